//! Loads and validates a project: `wh_project.yml` (or a dbt project's
//! `dbt_project.yml` and profile), `sources.yml`, model SQL and YAML,
//! seeds, macros, doc blocks. No DataFusion; templates are rendered later,
//! except `env_var()` in `profiles.yml` and `doc()` in descriptions, which
//! dbt resolves while loading too.

pub mod config;
mod config_tree;
pub mod dbt;
mod models;
mod schema;
mod target;
pub mod yaml;

use config_tree::ConfigTree;
pub use config_tree::{dbt_key_detail, note_dbt_keys};
use models::find_tag;
use target::resolve_target;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::diagnostic::{closest, did_you_mean, find_in_text, Location};
use config::{
    ColumnDef, ConfigPatch, ExposureDef, FileFormat, ModelProps, ProjectFile, SchemaFile, UnitTestDef, CONFIG_KEYS,
};

/// The project file's name.
pub const PROJECT_FILE: &str = "wh_project.yml";

/// The source under which each seed's CSV file is read.
pub const SEED_SOURCE: &str = "wh_seeds";

/// How `wh` treats a feature of a dbt project, for `wh debug --compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatKind {
    /// Read and given a `wh` meaning (a profile becomes a warehouse folder).
    Mapped,
    /// Accepted with no effect on what is built.
    Ignored,
    /// Not run; the report says what is lost.
    Unsupported,
}

/// One line of the compatibility report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompatNote {
    pub kind: CompatKind,
    /// The feature, key or file.
    pub what: String,
    pub detail: String,
    #[serde(serialize_with = "location_text")]
    pub location: Option<Location>,
}

fn location_text<S: serde::Serializer>(loc: &Option<Location>, s: S) -> Result<S::Ok, S::Error> {
    match loc {
        Some(l) => s.serialize_str(&l.to_string()),
        None => s.serialize_none(),
    }
}

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
    /// `--profiles-dir`: where a dbt project's `profiles.yml` is.
    pub profiles_dir: Option<PathBuf>,
    /// `--engine`.
    pub engine: Option<config::EngineName>,
    /// `--scheduler`.
    pub scheduler: Option<String>,
    /// `--job-timeout`.
    pub job_timeout: Option<String>,
    /// The command (`build`, `run`, ...): dbt's `flags.WHICH`.
    pub which: String,
}

/// dbt's `flags` as templates see them: true to the command.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `flags.WHICH`: dbt's name of the command (`build`, `run`, `list`...).
    pub which: String,
    /// `flags.FULL_REFRESH`: `--full-refresh` was given.
    pub full_refresh: bool,
}

/// Where a target's queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineChoice {
    /// DataFusion in the wh process.
    Local,
    /// A Ballista cluster: the scheduler at `df://host:port`, or with none
    /// a scheduler and an executor started in the wh process.
    Ballista { scheduler: Option<String>, job_timeout: std::time::Duration },
}

/// The resolved output environment.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Local folder or URL, as written in the project.
    pub warehouse: String,
    pub threads: usize,
    /// `target.schema` in templates.
    pub schema: String,
    pub s3: config::S3Settings,
    pub engine: EngineChoice,
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
    /// A CSV file under a seed path; `text` selects its rows.
    pub seed: bool,
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
    /// CSV only: SQL types of some columns (a seed's `column_types`).
    pub column_types: Map<String, Json>,
    /// Where the table is declared, for errors about it.
    pub defined_at: Location,
}

impl SourceTable {
    /// Returns `source.table`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.source, self.name)
    }
}

impl Project {
    /// Finds a unit test fixture: `<test-path>/fixtures/**/<name>.<ext>`;
    /// returns its path inside the project and its text.
    pub fn fixture(&self, name: &str, ext: &str) -> Result<Option<(PathBuf, String)>, ProjectError> {
        let file_name = format!("{name}.{ext}");
        for test_path in &self.test_paths {
            let base = self.root.join(test_path).join("fixtures");
            let found = walkdir::WalkDir::new(&base)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok)
                .find(|e| e.file_type().is_file() && e.file_name().to_string_lossy() == file_name);
            if let Some(e) = found {
                let rel = e.path().strip_prefix(&self.root).unwrap_or(e.path()).to_path_buf();
                return Ok(Some((rel, read(e.path())?)));
            }
        }
        Ok(None)
    }
}

/// Model properties from YAML, with where they were declared.
#[derive(Debug, Clone)]
pub struct DeclaredProps {
    pub props: ModelProps,
    /// `props.config`, read.
    pub config: Option<ConfigPatch>,
    pub defined_at: Location,
}

/// A project file's run hooks, each placed in the file.
fn run_hooks(list: &Option<config::HookList>, file_name: &str, text: &str, key: &str) -> Vec<config::Hook> {
    let mut list = list.clone().unwrap_or_default();
    list.locate(Path::new(file_name), text, &format!("{key}:"));
    list.0
}

/// A loaded, validated project.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    /// `wh_project.yml`, or `dbt_project.yml` for a dbt project.
    pub file_name: &'static str,
    pub name: String,
    pub vars: BTreeMap<String, Json>,
    pub target: Target,
    pub target_path: PathBuf,
    pub test_paths: Vec<String>,
    pub models: BTreeMap<String, ModelFile>,
    pub macros: Vec<MacroFile>,
    /// Analyses (a path and its text, as macro files): compiled, never run.
    pub analyses: Vec<MacroFile>,
    pub props: BTreeMap<String, DeclaredProps>,
    /// Enabled unit tests, with where each is declared.
    pub unit_tests: Vec<(UnitTestDef, Location)>,
    pub sources: BTreeMap<String, SourceTable>,
    /// Folder configs from `wh_project.yml`, shallowest first.
    pub folder_configs: Vec<(Vec<String>, ConfigPatch)>,
    /// The same for seeds (the `seeds:` tree).
    pub seed_configs: Vec<(Vec<String>, ConfigPatch)>,
    /// What a dbt project uses that `wh` maps, ignores or cannot run.
    pub compat: Vec<CompatNote>,
    /// Levels of the `wh check` rules.
    pub checks: config::ChecksFile,
    /// Alerts after a build or run.
    pub alerts: config::AlertsFile,
    /// What a build does with a stale source.
    pub on_stale_source: config::StalePolicy,
    /// Data classes and their masking.
    pub classification: BTreeMap<String, config::ClassPolicy>,
    /// Consent enforced on write.
    pub consent: Option<config::ConsentPolicy>,
    /// Where `wh forget` finds identifiers.
    pub forget: Option<config::ForgetPolicy>,
    /// Downstream consumers, with where each is declared.
    pub exposures: Vec<(ExposureDef, Location)>,
    /// dbt's `flags` for templates.
    pub flags: Flags,
    /// `on-run-start` and `on-run-end` hooks, as written.
    pub on_run_start: Vec<config::Hook>,
    pub on_run_end: Vec<config::Hook>,
    /// When this invocation started (`run_started_at` in templates; the
    /// time snapshots record).
    pub run_started_at: chrono::DateTime<chrono::Utc>,
    /// This invocation's id (`invocation_id` in templates and artifacts).
    pub invocation_id: String,
}

impl Project {
    /// Loads the project at `root`, applying command-line overrides:
    /// `wh_project.yml`, else a dbt project's `dbt_project.yml` and profile.
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Project, ProjectError> {
        let wh_path = root.join(PROJECT_FILE);
        let dbt_path = root.join(dbt::DBT_PROJECT_FILE);
        let (file_name, text, file, mut compat) = if wh_path.is_file() {
            let text = read(&wh_path)?;
            let file: ProjectFile = yaml::parse(&text, Path::new(PROJECT_FILE))?;
            let mut compat = Vec::new();
            if dbt_path.is_file() {
                compat.push(CompatNote {
                    kind: CompatKind::Ignored,
                    what: dbt::DBT_PROJECT_FILE.into(),
                    detail: format!("{PROJECT_FILE} is present and wins; {} is not read", dbt::DBT_PROJECT_FILE),
                    location: Some(Location::file(dbt::DBT_PROJECT_FILE)),
                });
            }
            (PROJECT_FILE, text, file, compat)
        } else if dbt_path.is_file() {
            let text = read(&dbt_path)?;
            let (file, compat) = dbt::load(root, &text, overrides)?;
            (dbt::DBT_PROJECT_FILE, text, file, compat)
        } else {
            return Err(ProjectError::Usage {
                message: format!("no `{PROJECT_FILE}` or `{}` in `{}`", dbt::DBT_PROJECT_FILE, root.display()),
                hint: Some("run wh in a project folder, pass --project-dir, or create one with `wh init DIR`".into()),
            });
        };
        let dbt = file_name == dbt::DBT_PROJECT_FILE;

        let mut vars = file.vars.clone();
        vars.extend(overrides.vars.clone());
        let target = resolve_target(&file, file_name, &text, overrides)?;
        let tree = ConfigTree { file_name, text: &text, project: &file.name, dbt };
        let folder_configs = tree.flatten("models", &file.models, &mut compat)?;
        let seed_configs = tree.flatten("seeds", &file.seeds, &mut compat)?;

        let mut project = Project {
            root: root.to_path_buf(),
            file_name,
            name: file.name.clone(),
            vars,
            target,
            target_path: PathBuf::from(&file.target_path),
            test_paths: file.test_paths.clone(),
            models: BTreeMap::new(),
            macros: Vec::new(),
            analyses: Vec::new(),
            props: BTreeMap::new(),
            unit_tests: Vec::new(),
            sources: BTreeMap::new(),
            folder_configs,
            seed_configs,
            compat,
            checks: file.checks,
            alerts: file.alerts.clone(),
            on_stale_source: file.on_stale_source,
            classification: file.classification.clone(),
            consent: file.consent.clone(),
            forget: file.forget.clone(),
            exposures: Vec::new(),
            flags: Flags { which: overrides.which.clone(), full_refresh: false },
            on_run_start: run_hooks(&file.on_run_start, file_name, &text, "on-run-start"),
            on_run_end: run_hooks(&file.on_run_end, file_name, &text, "on-run-end"),
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
        for seed_path in &file.seed_paths {
            project.load_seed_path(seed_path)?;
        }
        for snapshot_path in &file.snapshot_paths {
            project.load_snapshot_path(snapshot_path)?;
        }
        for macro_path in &file.macro_paths {
            for rel in files_under(root, macro_path, &["sql", "yml", "yaml"])? {
                if rel.extension().is_some_and(|e| e != "sql") {
                    // Macro properties (descriptions, arguments) are docs only.
                    continue;
                }
                let text = read(&root.join(&rel))?;
                project.macros.push(MacroFile { path: rel, text });
            }
        }
        for analysis_path in &file.analysis_paths {
            for rel in files_under(root, analysis_path, &["sql"])? {
                let text = read(&root.join(&rel))?;
                project.analyses.push(MacroFile { path: rel, text });
            }
        }
        // dbt reads generic tests from `generic/` under the test paths too.
        for test_path in &file.test_paths {
            for rel in files_under(root, &format!("{test_path}/generic"), &["sql"])? {
                let text = read(&root.join(&rel))?;
                project.macros.push(MacroFile { path: rel, text });
            }
        }
        let docs_paths = file.docs_paths.clone().unwrap_or_else(|| {
            let mut all = file.model_paths.clone();
            all.extend(file.seed_paths.iter().chain(&file.snapshot_paths).chain(&file.macro_paths).cloned());
            all.extend(file.test_paths.iter().cloned());
            all
        });
        let mut docs = BTreeMap::new();
        for docs_path in &docs_paths {
            project.load_docs(docs_path, &mut docs)?;
        }
        project.render_doc_descriptions(docs)?;
        project.check_props()?;
        project.note_unused_config_paths(&text);
        Ok(project)
    }

    /// Loads the CSV files under a seed path as seeds: each is read as the
    /// source table `wh_seeds.<name>` and published like a table model.
    fn load_seed_path(&mut self, seed_path: &str) -> Result<(), ProjectError> {
        for rel in files_under(&self.root, seed_path, &["csv", "yml", "yaml"])? {
            let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if ext != "csv" {
                self.load_schema_file(&rel)?;
                continue;
            }
            let name = rel.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let mut folder = vec!["seeds".to_string()];
            folder.extend(
                rel.strip_prefix(seed_path)
                    .unwrap_or(&rel)
                    .parent()
                    .into_iter()
                    .flat_map(|p| p.iter().map(|c| c.to_string_lossy().into_owned())),
            );
            let key = format!("{SEED_SOURCE}.{name}");
            self.sources.insert(
                key,
                SourceTable {
                    source: SEED_SOURCE.into(),
                    name: name.clone(),
                    description: format!("The seed file {}", rel.display()),
                    source_description: "CSV seed files of the project".into(),
                    location_template: Some(rel.to_string_lossy().replace('\\', "/")),
                    format: FileFormat::Csv,
                    has_header: true,
                    delimiter: ',',
                    column_types: Map::new(),
                    meta: Map::new(),
                    tags: Vec::new(),
                    columns: Vec::new(),
                    tests: Vec::new(),
                    loaded_at_field: None,
                    freshness: None,
                    defined_at: Location::file(&rel),
                },
            );
            let text = format!("select * from {{{{ source('{SEED_SOURCE}', '{name}') }}}}");
            self.add_model(ModelFile { name, path: rel, folder, text, snapshot: false, seed: true })?;
        }
        Ok(())
    }

    /// Reads the `{% docs name %} ... {% enddocs %}` blocks of the `.md`
    /// files under a docs path.
    fn load_docs(&self, docs_path: &str, docs: &mut BTreeMap<String, String>) -> Result<(), ProjectError> {
        for rel in files_under(&self.root, docs_path, &["md"])? {
            let text = read(&self.root.join(&rel))?;
            let mut pos = 0;
            while let Some((start, end, args)) = find_tag(&text, pos, "docs") {
                let name = args.trim().to_string();
                let line = text[..start].matches('\n').count() + 1;
                let Some((close_start, close_end, _)) = find_tag(&text, end, "enddocs") else {
                    return Err(ProjectError::invalid(
                        format!("docs block `{name}` has no `{{% enddocs %}}`"),
                        Location::at(&rel, line, 1),
                        None,
                    ));
                };
                if docs.insert(name.clone(), text[end..close_start].trim().to_string()).is_some() {
                    return Err(ProjectError::invalid(
                        format!("docs block `{name}` is defined twice"),
                        Location::at(&rel, line, 1),
                        Some("docs block names are unique across the project".into()),
                    ));
                }
                pos = close_end;
            }
        }
        Ok(())
    }

    /// Replaces `{{ doc("name") }}` in descriptions by the docs block.
    fn render_doc_descriptions(&mut self, docs: BTreeMap<String, String>) -> Result<(), ProjectError> {
        let docs = Arc::new(docs);
        let mut env = minijinja::Environment::new();
        let blocks = docs.clone();
        env.add_function("doc", move |name: String| {
            blocks.get(&name).cloned().ok_or_else(|| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("unknown docs block `{name}`"))
            })
        });
        let render = |text: &mut String, at: &Location| -> Result<(), ProjectError> {
            if !text.contains("{{") {
                return Ok(());
            }
            *text = env.render_str(text, ()).map_err(|e| {
                let message = e.detail().unwrap_or("template error").to_string();
                let name = message.strip_prefix("unknown docs block `").and_then(|r| r.split('`').next()).unwrap_or("");
                let hint = did_you_mean(name, docs.keys().map(String::as_str)).or_else(|| {
                    Some("define it in a .md file under a docs path: {% docs name %} ... {% enddocs %}".into())
                });
                ProjectError::invalid(format!("description: {message}"), at.clone(), hint)
            })?;
            Ok(())
        };
        for declared in self.props.values_mut() {
            render(&mut declared.props.description, &declared.defined_at)?;
            for c in &mut declared.props.columns {
                render(&mut c.description, &declared.defined_at)?;
            }
        }
        for table in self.sources.values_mut() {
            render(&mut table.description, &table.defined_at)?;
            render(&mut table.source_description, &table.defined_at)?;
            for c in &mut table.columns {
                render(&mut c.description, &table.defined_at)?;
            }
        }
        Ok(())
    }

    /// Notes the config paths of the project file that match no model or
    /// seed (dbt warns about them too): a misspelt folder, or a config key
    /// written without `+` that is not one.
    fn note_unused_config_paths(&mut self, text: &str) {
        let mut notes = Vec::new();
        for (seeds, configs) in [(false, &self.folder_configs), (true, &self.seed_configs)] {
            for (path, _) in configs {
                let used = self.models.values().filter(|m| m.seed == seeds).any(|m| {
                    let fqn = model_fqn(m);
                    fqn.starts_with(path)
                });
                if !used && !path.is_empty() {
                    let last = path.last().map(String::as_str).unwrap_or_default();
                    let hint = closest(last, config::CONFIG_KEYS.iter().copied())
                        .map(|key| format!(" (did you mean `{key}` as a config, `+{key}`?)"))
                        .unwrap_or_default();
                    notes.push(CompatNote {
                        kind: CompatKind::Ignored,
                        what: format!("{}.{}", if seeds { "seeds" } else { "models" }, path.join(".")),
                        detail: format!("this config path matches no {}{hint}", if seeds { "seed" } else { "model" }),
                        location: find_in_text(text, &format!("{last}:"))
                            .map(|(l, c)| Location::at(self.file_name, l, c)),
                    });
                }
            }
        }
        self.compat.extend(notes);
    }

    /// Returns the folder configs that apply to `model`, shallowest first.
    pub fn configs_for<'a>(&'a self, model: &'a ModelFile) -> impl Iterator<Item = &'a ConfigPatch> + 'a {
        let fqn = model_fqn(model);
        let configs = if model.seed { &self.seed_configs } else { &self.folder_configs };
        configs.iter().filter(move |(path, _)| fqn.starts_with(path)).map(|(_, p)| p)
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

/// The format a location's extension names (`.csv`: CSV), else Parquet.
fn format_of(location: Option<&str>) -> FileFormat {
    let ext = location.unwrap_or_default().trim().rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    match ext.trim_end_matches(['*', '}', ' ']) {
        "csv" => FileFormat::Csv,
        _ => FileFormat::Parquet,
    }
}

/// Returns a model's path in the config tree: its folders and its name.
fn model_fqn(model: &ModelFile) -> Vec<String> {
    let mut fqn: Vec<String> = if model.seed { model.folder[1..].to_vec() } else { model.folder.clone() };
    fqn.push(model.name.clone());
    fqn
}

fn read(path: &Path) -> Result<String, ProjectError> {
    std::fs::read_to_string(path).map_err(|source| ProjectError::Io { path: path.to_path_buf(), source })
}

/// Maps `f` over `items` on every core, keeping their order; a short list
/// is mapped on this thread.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    par_runs(items, 500, |run| run.iter().map(&f).collect())
}

/// Splits `items` into contiguous runs, one per core but none shorter than
/// `min_run` items, maps each run with `f` on its own thread and joins the
/// results in order.
pub fn par_runs<T: Sync, R: Send>(items: &[T], min_run: usize, f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (items.len() / min_run.max(1)).clamp(1, cores);
    if threads == 1 {
        return f(items);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            items.chunks(items.len().div_ceil(threads)).map(|run| scope.spawn(move || f(run))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
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
