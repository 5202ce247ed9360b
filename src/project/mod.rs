//! Loads and validates a project: `wh_project.yml`, `sources.yml`, model SQL
//! and YAML, macros. Plain Rust: no templating, no DataFusion.

pub mod config;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use crate::diagnostic::{did_you_mean, find_in_text, Location};
use config::{ColumnDef, ConfigPatch, ExposureDef, FileFormat, ModelProps, ProjectFile, SchemaFile, CONFIG_KEYS};

/// The project file's name.
pub const PROJECT_FILE: &str = "wh_project.yml";

/// A problem with the project's files or the command line: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{message}")]
    Yaml { message: String, location: Location, hint: Option<String> },
    #[error("{message}")]
    Invalid { message: String, location: Location, hint: Option<String> },
    #[error("{message}")]
    Usage { message: String, hint: Option<String> },
    #[error("cannot read `{}`", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ProjectError {
    fn invalid(message: impl Into<String>, location: Location, hint: Option<String>) -> Self {
        ProjectError::Invalid { message: message.into(), location, hint }
    }
}

/// What the command line adds to the project's own settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--target`.
    pub target: Option<String>,
    /// `--vars`, already parsed.
    pub vars: BTreeMap<String, Json>,
    /// `--threads`.
    pub threads: Option<usize>,
}

/// The resolved output environment.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Local folder or URL, as written in the project.
    pub warehouse: String,
    pub threads: usize,
    pub s3: config::S3Settings,
    /// Where the target is declared, for errors about its warehouse.
    pub defined_at: Location,
}

/// A model's SQL file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub name: String,
    /// Path relative to the project root, e.g. `models/staging/stg_orders.sql`.
    pub path: PathBuf,
    /// Folders between the model path and the file, e.g. `["staging"]`;
    /// `["snapshots"]` for a snapshot.
    pub folder: Vec<String>,
    /// The template: the file, or for a snapshot the file with everything
    /// outside its `{% snapshot %}` block blanked (lines kept, so template
    /// errors point at the file's own lines).
    pub text: String,
    /// Declared by a `{% snapshot name %}` block under a snapshot path.
    pub snapshot: bool,
}

/// A macro file under a macro path.
#[derive(Debug, Clone)]
pub struct MacroFile {
    pub path: PathBuf,
    pub text: String,
}

/// One table of a source, with its declared location still a template.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub source: String,
    pub name: String,
    pub description: String,
    pub source_description: String,
    pub location_template: Option<String>,
    pub format: FileFormat,
    pub has_header: bool,
    pub delimiter: char,
    pub meta: Map<String, Json>,
    pub tags: Vec<String>,
    pub columns: Vec<ColumnDef>,
    pub tests: Vec<Json>,
    pub loaded_at_field: Option<String>,
    pub freshness: Option<config::FreshnessDef>,
    /// Where the table is declared, for errors about it.
    pub defined_at: Location,
}

impl SourceTable {
    /// Returns `source.table`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.source, self.name)
    }
}

/// Model properties from YAML, with where they were declared.
#[derive(Debug, Clone)]
pub struct DeclaredProps {
    pub props: ModelProps,
    pub defined_at: Location,
}

/// A loaded, validated project.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub name: String,
    pub vars: BTreeMap<String, Json>,
    pub target: Target,
    pub target_path: PathBuf,
    pub test_paths: Vec<String>,
    pub models: BTreeMap<String, ModelFile>,
    pub macros: Vec<MacroFile>,
    pub props: BTreeMap<String, DeclaredProps>,
    pub sources: BTreeMap<String, SourceTable>,
    /// Folder configs from `wh_project.yml`, shallowest first.
    pub folder_configs: Vec<(Vec<String>, ConfigPatch)>,
    /// Levels of the `wh check` rules.
    pub checks: config::ChecksFile,
    /// Alerts after a build or run.
    pub alerts: config::AlertsFile,
    /// What a build does with a stale source.
    pub on_stale_source: config::StalePolicy,
    /// Downstream consumers, with where each is declared.
    pub exposures: Vec<(ExposureDef, Location)>,
    /// When this invocation started (`run_started_at` in templates; the
    /// time snapshots record).
    pub run_started_at: chrono::DateTime<chrono::Utc>,
    /// This invocation's id (`invocation_id` in templates and artifacts).
    pub invocation_id: String,
}

impl Project {
    /// Loads the project at `root`, applying command-line overrides.
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Project, ProjectError> {
        let project_path = root.join(PROJECT_FILE);
        if !project_path.is_file() {
            return Err(ProjectError::Usage {
                message: format!("no `{PROJECT_FILE}` in `{}`", root.display()),
                hint: Some("run wh in a project folder, pass --project-dir, or create one with `wh init DIR`".into()),
            });
        }
        let text = read(&project_path)?;
        let file: ProjectFile = yaml::parse(&text, Path::new(PROJECT_FILE))?;

        let mut vars = file.vars.clone();
        vars.extend(overrides.vars.clone());
        let target = resolve_target(&file, &text, overrides)?;
        let folder_configs = folder_configs(&file, &text)?;

        let mut project = Project {
            root: root.to_path_buf(),
            name: file.name.clone(),
            vars,
            target,
            target_path: PathBuf::from(&file.target_path),
            test_paths: file.test_paths.clone(),
            models: BTreeMap::new(),
            macros: Vec::new(),
            props: BTreeMap::new(),
            sources: BTreeMap::new(),
            folder_configs,
            checks: file.checks,
            alerts: file.alerts.clone(),
            on_stale_source: file.on_stale_source,
            exposures: Vec::new(),
            run_started_at: chrono::Utc::now(),
            invocation_id: uuid::Uuid::new_v4().to_string(),
        };

        let sources_file = root.join("sources.yml");
        if sources_file.is_file() {
            project.load_schema_file(Path::new("sources.yml"))?;
        }
        for model_path in &file.model_paths {
            project.load_model_path(model_path)?;
        }
        for snapshot_path in &file.snapshot_paths {
            project.load_snapshot_path(snapshot_path)?;
        }
        for macro_path in &file.macro_paths {
            for rel in files_under(root, macro_path, &["sql"])? {
                let text = read(&root.join(&rel))?;
                project.macros.push(MacroFile { path: rel, text });
            }
        }
        project.check_props()?;
        Ok(project)
    }

    fn load_model_path(&mut self, model_path: &str) -> Result<(), ProjectError> {
        for rel in files_under(&self.root, model_path, &["sql", "yml", "yaml"])? {
            let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if ext != "sql" {
                self.load_schema_file(&rel)?;
                continue;
            }
            let name = rel.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let folder: Vec<String> = rel
                .strip_prefix(model_path)
                .unwrap_or(&rel)
                .parent()
                .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let text = read(&self.root.join(&rel))?;
            self.add_model(ModelFile { name, path: rel, folder, text, snapshot: false })?;
        }
        Ok(())
    }

    fn add_model(&mut self, file: ModelFile) -> Result<(), ProjectError> {
        if let Some(other) = self.models.get(&file.name) {
            return Err(ProjectError::invalid(
                format!(
                    "two models are named `{}`: `{}` and `{}`",
                    file.name,
                    other.path.display(),
                    file.path.display()
                ),
                Location::file(&file.path),
                Some("model and snapshot names must be unique across the project; rename one".into()),
            ));
        }
        self.models.insert(file.name.clone(), file);
        Ok(())
    }

    /// Loads the `{% snapshot name %} ... {% endsnapshot %}` blocks of the
    /// `.sql` files under a snapshot path (YAML there describes them).
    fn load_snapshot_path(&mut self, snapshot_path: &str) -> Result<(), ProjectError> {
        for rel in files_under(&self.root, snapshot_path, &["sql", "yml", "yaml"])? {
            if rel.extension().is_some_and(|e| e != "sql") {
                self.load_schema_file(&rel)?;
                continue;
            }
            let text = read(&self.root.join(&rel))?;
            let blocks = snapshot_blocks(&text).map_err(|(message, line)| {
                ProjectError::invalid(
                    message,
                    Location::at(&rel, line, 1),
                    Some("write `{% snapshot name %} select ... {% endsnapshot %}`".into()),
                )
            })?;
            if blocks.is_empty() {
                return Err(ProjectError::invalid(
                    format!("`{}` holds no `{{% snapshot %}}` block", rel.display()),
                    Location::file(&rel),
                    Some(
                        "a file under a snapshot path holds `{% snapshot name %} ... {% endsnapshot %}` blocks".into(),
                    ),
                ));
            }
            for (name, text) in blocks {
                let folder = vec!["snapshots".to_string()];
                self.add_model(ModelFile { name, path: rel.clone(), folder, text, snapshot: true })?;
            }
        }
        Ok(())
    }

    fn load_schema_file(&mut self, rel: &Path) -> Result<(), ProjectError> {
        let text = read(&self.root.join(rel))?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let file: SchemaFile = yaml::parse(&text, rel)?;
        let names = name_positions(&text);
        let at = |name: &str| names.get(name).copied().unwrap_or((0, 0));
        for e in file.exposures {
            let (line, col) = at(&e.name);
            self.exposures.push((e, Location::at(rel, line, col)));
        }
        for props in file.models {
            let (line, col) = at(&props.name);
            let defined_at = Location::at(rel, line, col);
            if let Some(prev) = self.props.get(&props.name) {
                return Err(ProjectError::invalid(
                    format!("model `{}` is described twice (first at {})", props.name, prev.defined_at),
                    defined_at,
                    None,
                ));
            }
            self.props.insert(props.name.clone(), DeclaredProps { props, defined_at });
        }
        for source in file.sources {
            for table in source.tables {
                let (line, col) = at(&table.name);
                let defined_at = Location::at(rel, line, col);
                let key = format!("{}.{}", source.name, table.name);
                if self.sources.contains_key(&key) {
                    return Err(ProjectError::invalid(
                        format!("source table `{key}` is declared twice"),
                        defined_at,
                        None,
                    ));
                }
                let mut tests = table.tests;
                tests.extend(table.data_tests);
                let mut tags = source.tags.0.clone();
                tags.extend(table.tags.0);
                let mut meta = source.meta.clone();
                meta.extend(table.meta);
                let loaded_at_field = table.loaded_at_field.or(source.loaded_at_field.clone());
                let freshness = table.freshness.or(source.freshness.clone());
                if freshness.is_some() && loaded_at_field.is_none() {
                    return Err(ProjectError::invalid(
                        format!("source `{key}` declares `freshness` but no `loaded_at_field`"),
                        defined_at,
                        Some(
                            "add `loaded_at_field: COLUMN` (the time each row was loaded) to the table or source"
                                .into(),
                        ),
                    ));
                }
                self.sources.insert(
                    key,
                    SourceTable {
                        source: source.name.clone(),
                        name: table.name,
                        description: table.description,
                        source_description: source.description.clone(),
                        location_template: table.location,
                        format: table.format.or(source.format).unwrap_or(FileFormat::Parquet),
                        has_header: table.has_header.unwrap_or(true),
                        delimiter: table.delimiter.unwrap_or(','),
                        meta,
                        tags,
                        columns: table.columns,
                        tests,
                        loaded_at_field,
                        freshness,
                        defined_at,
                    },
                );
            }
        }
        Ok(())
    }

    /// Rejects YAML that describes models that do not exist, and exposures
    /// that read unknown models.
    fn check_props(&self) -> Result<(), ProjectError> {
        for (e, at) in &self.exposures {
            for d in &e.depends_on {
                let model = exposure_ref(d).ok_or_else(|| {
                    ProjectError::invalid(
                        format!("exposure `{}`: `{d}` is not a ref('model')", e.name),
                        at.clone(),
                        Some("write depends_on: [\"ref('mart_customer_rfm')\"]".into()),
                    )
                })?;
                if !self.models.contains_key(&model) {
                    return Err(ProjectError::invalid(
                        format!("exposure `{}` reads unknown model `{model}`", e.name),
                        at.clone(),
                        did_you_mean(&model, self.models.keys().map(String::as_str)),
                    ));
                }
            }
        }
        for (name, declared) in &self.props {
            if !self.models.contains_key(name) {
                return Err(ProjectError::invalid(
                    format!("YAML describes model `{name}`, but there is no `{name}.sql` under the model paths"),
                    declared.defined_at.clone(),
                    did_you_mean(name, self.models.keys().map(String::as_str)),
                ));
            }
        }
        Ok(())
    }

    /// Returns the folder configs that apply to `model`, shallowest first.
    pub fn configs_for<'a>(&'a self, model: &'a ModelFile) -> impl Iterator<Item = &'a ConfigPatch> + 'a {
        let mut fqn = model.folder.clone();
        fqn.push(model.name.clone());
        self.folder_configs.iter().filter(move |(path, _)| fqn.starts_with(path)).map(|(_, p)| p)
    }

    /// Returns the absolute warehouse root for a local target, or `None` for
    /// a URL.
    pub fn local_warehouse(&self) -> Option<PathBuf> {
        let w = &self.target.warehouse;
        if w.contains("://") && !w.starts_with("file://") {
            return None;
        }
        let p = PathBuf::from(w.trim_start_matches("file://"));
        Some(if p.is_absolute() { p } else { self.root.join(p) })
    }
}

fn resolve_target(file: &ProjectFile, text: &str, overrides: &Overrides) -> Result<Target, ProjectError> {
    let name = overrides.target.clone().or_else(|| file.target.clone()).unwrap_or_else(|| "dev".into());
    let (warehouse, threads, s3) = match file.targets.get(&name) {
        Some(t) => (t.warehouse.clone(), t.threads, t.s3.clone()),
        None if file.targets.is_empty() && name == "dev" => ("warehouse".to_string(), None, Default::default()),
        None => {
            let (line, col) = find_in_text(text, "targets:").unwrap_or((0, 0));
            return Err(ProjectError::invalid(
                format!("target `{name}` is not declared in `targets:`"),
                Location::at(PROJECT_FILE, line, col),
                did_you_mean(&name, file.targets.keys().map(String::as_str)).or_else(|| {
                    Some(format!("declared targets: {}", file.targets.keys().cloned().collect::<Vec<_>>().join(", ")))
                }),
            ));
        }
    };
    let threads = overrides.threads.or(threads).unwrap_or(4).max(1);
    // The target's own line under `targets:`, else the file.
    let declared = text.lines().enumerate().skip_while(|(_, l)| !l.starts_with("targets:")).find_map(|(i, l)| {
        let key = l.trim_start();
        key.strip_prefix(name.as_str()).filter(|r| r.starts_with(':')).map(|_| (i + 1, l.len() - key.len() + 1))
    });
    let defined_at = match declared {
        Some((line, col)) => Location::at(PROJECT_FILE, line, col),
        None => Location::file(PROJECT_FILE),
    };
    Ok(Target { name, warehouse, threads, s3, defined_at })
}

/// Flattens the `models:` tree of `wh_project.yml` into (folder path, patch).
fn folder_configs(file: &ProjectFile, text: &str) -> Result<Vec<(Vec<String>, ConfigPatch)>, ProjectError> {
    let mut out = Vec::new();
    let mut top = Map::new();
    for (key, value) in &file.models {
        if key.starts_with('+') {
            top.insert(key.clone(), value.clone());
        } else if key == &file.name {
            walk_config_tree(value, &mut Vec::new(), text, &mut out)?;
        } else {
            let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
            return Err(ProjectError::invalid(
                format!("`models:` in {PROJECT_FILE} starts with `{key}`, which is not the project name `{}`", file.name),
                Location::at(PROJECT_FILE, line, col),
                Some(format!("nest folder configs under the project name, e.g. `models: {{{}: {{staging: {{+materialized: table}}}}}}`", file.name)),
            ));
        }
    }
    if !top.is_empty() {
        out.push((Vec::new(), patch_from(&top, text)?));
    }
    out.sort_by_key(|(path, _)| path.len());
    Ok(out)
}

fn walk_config_tree(
    node: &Json,
    path: &mut Vec<String>,
    text: &str,
    out: &mut Vec<(Vec<String>, ConfigPatch)>,
) -> Result<(), ProjectError> {
    let Json::Object(map) = node else {
        let (line, col) = path.last().and_then(|k| find_in_text(text, &format!("{k}:"))).unwrap_or((0, 0));
        return Err(ProjectError::invalid(
            format!("`models:` entry `{}` must be a mapping of `+config` keys and sub-folders", path.join(".")),
            Location::at(PROJECT_FILE, line, col),
            None,
        ));
    };
    let configs: Map<String, Json> =
        map.iter().filter(|(k, _)| k.starts_with('+')).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !configs.is_empty() {
        out.push((path.clone(), patch_from(&configs, text)?));
    }
    for (key, child) in map.iter().filter(|(k, _)| !k.starts_with('+')) {
        if CONFIG_KEYS.contains(&key.as_str()) {
            let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
            return Err(ProjectError::invalid(
                format!("`{key}` in `models:` is read as a folder name"),
                Location::at(PROJECT_FILE, line, col),
                Some(format!("configs in {PROJECT_FILE} take a `+` prefix: `+{key}`")),
            ));
        }
        path.push(key.clone());
        walk_config_tree(child, path, text, out)?;
        path.pop();
    }
    Ok(())
}

fn patch_from(configs: &Map<String, Json>, text: &str) -> Result<ConfigPatch, ProjectError> {
    let plain: Map<String, Json> =
        configs.iter().map(|(k, v)| (k.trim_start_matches('+').to_string(), v.clone())).collect();
    serde_json::from_value(Json::Object(plain)).map_err(|err| {
        let message = err.to_string();
        let bad = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string);
        let (line, col) = bad.as_ref().and_then(|b| find_in_text(text, &format!("+{b}"))).unwrap_or((0, 0));
        let hint =
            bad.as_ref().and_then(|b| did_you_mean(b, CONFIG_KEYS.iter().copied())).map(|h| h.replacen('`', "`+", 1));
        ProjectError::invalid(
            format!("invalid model config in `models:`: {message}"),
            Location::at(PROJECT_FILE, line, col),
            hint,
        )
    })
}

fn read(path: &Path) -> Result<String, ProjectError> {
    std::fs::read_to_string(path).map_err(|source| ProjectError::Io { path: path.to_path_buf(), source })
}

/// Lists files under `root/dir` with one of `exts`, as paths relative to
/// `root`, sorted.
fn files_under(root: &Path, dir: &str, exts: &[&str]) -> Result<Vec<PathBuf>, ProjectError> {
    let base = root.join(dir);
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
        let entry = entry.map_err(|e| ProjectError::Io { path: base.clone(), source: e.into() })?;
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        let ext_ok = path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e));
        if entry.file_type().is_file() && ext_ok && !hidden {
            out.push(path.strip_prefix(root).unwrap_or(path).to_path_buf());
        }
    }
    Ok(out)
}

/// Splits a snapshot file into its blocks: each block's name and the file's
/// text with everything but the block's body blanked, lines kept. Errors
/// give a message and a 1-based line.
fn snapshot_blocks(text: &str) -> Result<Vec<(String, String)>, (String, usize)> {
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let blank = |s: &str| s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect::<String>();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(open) = find_tag(text, pos, "snapshot") {
        let (tag_start, tag_end, args) = open;
        let name = args.trim().to_string();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((
                format!("`{{% snapshot {name} %}}` needs a name of letters, digits and `_`"),
                line_of(tag_start),
            ));
        }
        let Some((close_start, close_end, _)) = find_tag(text, tag_end, "endsnapshot") else {
            return Err((format!("snapshot `{name}` has no `{{% endsnapshot %}}`"), line_of(tag_start)));
        };
        let body = format!("{}{}{}", blank(&text[..tag_end]), &text[tag_end..close_start], blank(&text[close_start..]));
        out.push((name, body));
        pos = close_end;
    }
    Ok(out)
}

/// Finds the next `{% keyword args %}` tag (with optional `-` trims) at or
/// after `from`: its start, end and arguments.
fn find_tag(text: &str, from: usize, keyword: &str) -> Option<(usize, usize, String)> {
    let mut at = from;
    while let Some(i) = text[at..].find("{%") {
        let start = at + i;
        let end = start + text[start..].find("%}")? + 2;
        let inner = text[start + 2..end - 2].trim_matches('-').trim();
        let mut words = inner.splitn(2, char::is_whitespace);
        if words.next() == Some(keyword) {
            return Some((start, end, words.next().unwrap_or("").to_string()));
        }
        at = end;
    }
    None
}

/// Returns the model named by an exposure's `ref('model')` entry.
pub fn exposure_ref(entry: &str) -> Option<String> {
    let inner = entry.trim().strip_prefix("ref(")?.strip_suffix(')')?;
    Some(inner.split(',').next_back()?.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// Maps each `name: X` value of a YAML file to its first line and column,
/// in one pass (looking each name up in the text would be quadratic).
fn name_positions(text: &str) -> std::collections::HashMap<String, (usize, usize)> {
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some(pos) = line.find("name:") else { continue };
        let before = line[..pos].trim_start_matches([' ', '-', '{']);
        if !before.trim().is_empty() && !before.trim_end().ends_with(',') {
            continue;
        }
        let value = line[pos + 5..].split([',', '}', '#']).next().unwrap_or("").trim().trim_matches(['\'', '"']);
        if !value.is_empty() {
            out.entry(value.to_string()).or_insert((i + 1, line[..pos].chars().count() + 1));
        }
    }
    out
}
