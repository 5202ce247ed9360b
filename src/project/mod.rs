//! Loads and validates a project: `wh_project.yml` (or a dbt project's
//! `dbt_project.yml` and profile), `sources.yml`, model SQL and YAML,
//! seeds, macros, doc blocks. No DataFusion; templates are rendered later,
//! except `env_var()` in `profiles.yml` and `doc()` in descriptions, which
//! dbt resolves while loading too.

pub mod config;
pub mod dbt;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::diagnostic::{did_you_mean, find_in_text, Location};
use config::{ColumnDef, ConfigPatch, ExposureDef, FileFormat, ModelProps, ProjectFile, SchemaFile, CONFIG_KEYS};

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

/// Model properties from YAML, with where they were declared.
#[derive(Debug, Clone)]
pub struct DeclaredProps {
    pub props: ModelProps,
    /// `props.config`, read.
    pub config: Option<ConfigPatch>,
    pub defined_at: Location,
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
                    let hint = did_you_mean(last, config::CONFIG_KEYS.iter().copied())
                        .map(|h| {
                            format!(
                                " ({h} as a config, `+{}`)",
                                h.trim_start_matches("did you mean `").trim_end_matches("`?")
                            )
                        })
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
            self.add_model(ModelFile { name, path: rel, folder, text, snapshot: false, seed: false })?;
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
                self.add_model(ModelFile { name, path: rel.clone(), folder, text, snapshot: true, seed: false })?;
            }
        }
        Ok(())
    }

    fn load_schema_file(&mut self, rel: &Path) -> Result<(), ProjectError> {
        let text = read(&self.root.join(rel))?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let mut file: SchemaFile = yaml::parse(&text, rel)?;
        let names = name_positions(&text);
        let at = |name: &str| names.get(name).copied().unwrap_or((0, 0));
        let unused = [
            ("macros", file.macros.is_some(), CompatKind::Ignored, "macro properties are documentation only"),
            ("analyses", file.analyses.is_some(), CompatKind::Ignored, "analyses are not run"),
            ("groups", file.groups.is_some(), CompatKind::Ignored, "groups are accepted and not enforced"),
            ("unit_tests", file.unit_tests.is_some(), CompatKind::Unsupported, "unit tests are not run"),
            (
                "semantic_models",
                file.semantic_models.is_some(),
                CompatKind::Unsupported,
                "the semantic layer is not supported",
            ),
            ("metrics", file.metrics.is_some(), CompatKind::Unsupported, "the semantic layer is not supported"),
            (
                "saved_queries",
                file.saved_queries.is_some(),
                CompatKind::Unsupported,
                "the semantic layer is not supported",
            ),
        ];
        for (key, present, kind, detail) in unused {
            if present {
                let (line, col) = find_in_text(&text, &format!("{key}:")).unwrap_or((0, 0));
                self.compat.push(CompatNote {
                    kind,
                    what: key.to_string(),
                    detail: detail.to_string(),
                    location: Some(Location::at(rel, line, col)),
                });
            }
        }
        for props in file.models.iter().chain(&file.seeds).chain(&file.snapshots) {
            if props.versions.is_some() {
                let (line, col) = at(&props.name);
                self.compat.push(CompatNote {
                    kind: CompatKind::Unsupported,
                    what: format!("versions of `{}`", props.name),
                    detail: "model versions are not supported: only the unversioned model is built".into(),
                    location: Some(Location::at(rel, line, col)),
                });
            }
        }
        file.models.append(&mut file.seeds);
        file.models.append(&mut file.snapshots);
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
            let config = match &props.config {
                Some(map) => Some(self.yaml_config(map, &props.name, rel, &text, &defined_at)?),
                None => None,
            };
            self.props.insert(props.name.clone(), DeclaredProps { props, config, defined_at });
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
                meta.extend(table.meta.clone());
                let loaded_at_field = table.loaded_at_field.or(source.loaded_at_field.clone());
                // dbt-duckdb reads files through `external_location`, in the
                // table's or the source's meta or config, `{name}` standing
                // for the table (or its identifier).
                let external = |m: Option<&Map<String, Json>>| {
                    m.and_then(|m| m.get("external_location")).and_then(Json::as_str).map(str::to_string)
                };
                let location = table.location.clone().or_else(|| {
                    external(Some(&table.meta))
                        .or_else(|| external(table.config.as_ref()))
                        .or_else(|| external(Some(&source.meta)))
                        .or_else(|| external(source.config.as_ref()))
                        .map(|l| {
                            let ident = table.identifier.clone().unwrap_or_else(|| table.name.clone());
                            l.replace("{name}", &ident).replace("{identifier}", &ident)
                        })
                });
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
                let format = table.format.or(source.format).unwrap_or_else(|| format_of(location.as_deref()));
                self.sources.insert(
                    key,
                    SourceTable {
                        source: source.name.clone(),
                        name: table.name,
                        description: table.description,
                        source_description: source.description.clone(),
                        location_template: location,
                        format,
                        has_header: table.has_header.unwrap_or(true),
                        delimiter: table.delimiter.unwrap_or(','),
                        meta,
                        tags,
                        columns: table.columns,
                        tests,
                        loaded_at_field,
                        freshness,
                        column_types: Map::new(),
                        defined_at,
                    },
                );
            }
        }
        Ok(())
    }

    /// Reads a `config:` block of a YAML file; dbt keys wh does not use are
    /// noted for the compatibility report.
    fn yaml_config(
        &mut self,
        map: &Map<String, Json>,
        model: &str,
        rel: &Path,
        text: &str,
        defined_at: &Location,
    ) -> Result<ConfigPatch, ProjectError> {
        let mut plain = map.clone();
        let notes = note_dbt_keys(
            &mut plain,
            |key| format!("{model}: config.{key}"),
            |key| {
                let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
                Location::at(rel, line, col)
            },
        );
        self.compat.extend(notes);
        serde_json::from_value(Json::Object(plain)).map_err(|err| {
            let message = err.to_string();
            let bad = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string);
            let location = bad
                .as_ref()
                .and_then(|b| find_in_text(text, &format!("{b}:")))
                .map(|(line, col)| Location::at(rel, line, col))
                .unwrap_or_else(|| defined_at.clone());
            let hint = bad.as_ref().and_then(|b| did_you_mean(b, CONFIG_KEYS.iter().copied()));
            ProjectError::invalid(format!("invalid config of `{model}`: {message}"), location, hint)
        })
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

fn resolve_target(
    file: &ProjectFile,
    file_name: &'static str,
    text: &str,
    overrides: &Overrides,
) -> Result<Target, ProjectError> {
    let name = overrides.target.clone().or_else(|| file.target.clone()).unwrap_or_else(|| "dev".into());
    let Some(t) = file.targets.get(&name).cloned().or_else(|| {
        (file.targets.is_empty() && name == "dev")
            .then(|| config::TargetFile { warehouse: "warehouse".to_string(), ..Default::default() })
    }) else {
        let (line, col) = find_in_text(text, "targets:").unwrap_or((0, 0));
        return Err(ProjectError::invalid(
            format!("target `{name}` is not declared in `targets:`"),
            Location::at(file_name, line, col),
            did_you_mean(&name, file.targets.keys().map(String::as_str)).or_else(|| {
                Some(format!("declared targets: {}", file.targets.keys().cloned().collect::<Vec<_>>().join(", ")))
            }),
        ));
    };
    let threads = overrides.threads.or(t.threads).unwrap_or(4).max(1);
    // The target's own line under `targets:`, else the file.
    let declared = text.lines().enumerate().skip_while(|(_, l)| !l.starts_with("targets:")).find_map(|(i, l)| {
        let key = l.trim_start();
        key.strip_prefix(name.as_str()).filter(|r| r.starts_with(':')).map(|_| (i + 1, l.len() - key.len() + 1))
    });
    let defined_at = match declared {
        Some((line, col)) => Location::at(file_name, line, col),
        None => Location::file(file_name),
    };
    let schema = t.schema.clone().unwrap_or_else(|| "main".into());
    let engine = engine_choice(overrides, &t, &defined_at)?;
    Ok(Target { name, warehouse: t.warehouse, threads, schema, s3: t.s3, engine, defined_at })
}

/// Resolves the engine from `--engine`/`--scheduler` over the target's
/// `engine:`/`scheduler:`.
fn engine_choice(
    overrides: &Overrides,
    target: &config::TargetFile,
    defined_at: &Location,
) -> Result<EngineChoice, ProjectError> {
    let scheduler = overrides.scheduler.clone().or(target.scheduler.clone());
    match overrides.engine.or(target.engine).unwrap_or(config::EngineName::Local) {
        config::EngineName::Local if scheduler.is_some() => Err(ProjectError::invalid(
            "a scheduler is given, but the engine is `local`".to_string(),
            defined_at.clone(),
            Some("run on the cluster with --engine ballista (or `engine: ballista` in the target)".into()),
        )),
        config::EngineName::Local => Ok(EngineChoice::Local),
        config::EngineName::Ballista => {
            if let Some(url) = &scheduler {
                let parsed = url::Url::parse(url).ok().filter(|u| u.scheme() == "df" && u.host_str().is_some());
                if parsed.is_none() {
                    return Err(ProjectError::invalid(
                        format!("scheduler `{url}` is not a Ballista scheduler address"),
                        defined_at.clone(),
                        Some("write it as df://host:port, e.g. df://localhost:50050".into()),
                    ));
                }
            }
            let job_timeout = job_timeout(overrides, target, defined_at)?;
            Ok(EngineChoice::Ballista { scheduler, job_timeout })
        }
    }
}

/// `--job-timeout`, else the target's `job_timeout:`, else the default.
fn job_timeout(
    overrides: &Overrides,
    target: &config::TargetFile,
    defined_at: &Location,
) -> Result<std::time::Duration, ProjectError> {
    let Some(text) = overrides.job_timeout.as_ref().or(target.job_timeout.as_ref()) else {
        return Ok(config::DEFAULT_JOB_TIMEOUT);
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(ProjectError::invalid(
            format!("job timeout `{text}` is not a duration"),
            defined_at.clone(),
            Some("write it as a number with a unit, e.g. 90s, 20m or 2h".into()),
        )),
    }
}

/// A config tree of the project file (`models:` or `seeds:`) and how to
/// read it.
struct ConfigTree<'a> {
    file_name: &'static str,
    text: &'a str,
    project: &'a str,
    /// dbt's reading: config keys may be written without `+`, and trees of
    /// other packages are noted, not refused.
    dbt: bool,
}

impl ConfigTree<'_> {
    /// Flattens a tree into (folder path, patch), shallowest first.
    fn flatten(
        &self,
        kind: &str,
        tree: &Map<String, Json>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<Vec<(Vec<String>, ConfigPatch)>, ProjectError> {
        let file_name = self.file_name;
        let mut out = Vec::new();
        let mut top = Map::new();
        for (key, value) in tree {
            if key.starts_with('+') || (self.dbt && is_config_key(key)) {
                top.insert(key.clone(), value.clone());
            } else if key == self.project {
                self.walk(kind, value, &mut Vec::new(), &mut out, notes)?;
            } else if self.dbt {
                notes.push(CompatNote {
                    kind: CompatKind::Ignored,
                    what: format!("{kind}.{key}"),
                    detail: format!("configs for the package `{key}`, which is not installed"),
                    location: Some(self.at(&format!("{key}:"))),
                });
            } else {
                return Err(ProjectError::invalid(
                    format!("`{kind}:` in {file_name} starts with `{key}`, which is not the project name `{}`", self.project),
                    self.at(&format!("{key}:")),
                    Some(format!(
                        "nest folder configs under the project name, e.g. `{kind}: {{{}: {{staging: {{+materialized: table}}}}}}`",
                        self.project
                    )),
                ));
            }
        }
        if !top.is_empty() {
            out.push((Vec::new(), self.patch(kind, &[], top, notes)?));
        }
        out.sort_by_key(|(path, _)| path.len());
        Ok(out)
    }

    fn at(&self, needle: &str) -> Location {
        let (line, col) = find_in_text(self.text, needle).unwrap_or((0, 0));
        Location::at(self.file_name, line, col)
    }

    fn walk(
        &self,
        kind: &str,
        node: &Json,
        path: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, ConfigPatch)>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<(), ProjectError> {
        let Json::Object(map) = node else {
            if node.is_null() {
                return Ok(());
            }
            return Err(ProjectError::invalid(
                format!("`{kind}:` entry `{}` must be a mapping of `+config` keys and sub-folders", path.join(".")),
                path.last().map(|k| self.at(&format!("{k}:"))).unwrap_or_else(|| Location::file(self.file_name)),
                None,
            ));
        };
        let is_config = |k: &str| k.starts_with('+') || (self.dbt && is_config_key(k));
        let configs: Map<String, Json> =
            map.iter().filter(|(k, _)| is_config(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !configs.is_empty() {
            out.push((path.clone(), self.patch(kind, path, configs, notes)?));
        }
        for (key, child) in map.iter().filter(|(k, _)| !is_config(k)) {
            if CONFIG_KEYS.contains(&key.as_str()) {
                return Err(ProjectError::invalid(
                    format!("`{key}` in `{kind}:` is read as a folder name"),
                    self.at(&format!("{key}:")),
                    Some(format!("configs in {} take a `+` prefix: `+{key}`", self.file_name)),
                ));
            }
            path.push(key.clone());
            self.walk(kind, child, path, out, notes)?;
            path.pop();
        }
        Ok(())
    }

    fn patch(
        &self,
        kind: &str,
        path: &[String],
        configs: Map<String, Json>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<ConfigPatch, ProjectError> {
        let mut plain: Map<String, Json> =
            configs.iter().map(|(k, v)| (k.trim_start_matches('+').to_string(), v.clone())).collect();
        let prefix: Vec<String> = std::iter::once(kind.to_string()).chain(path.iter().cloned()).collect();
        let prefix = prefix.join(".");
        notes.extend(note_dbt_keys(&mut plain, |key| format!("{prefix}.+{key}"), |key| self.at(&format!("{key}:"))));
        serde_json::from_value(Json::Object(plain)).map_err(|err| {
            let message = err.to_string();
            let bad = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string);
            let location = bad.as_ref().map(|b| self.at(b)).unwrap_or_else(|| Location::file(self.file_name));
            let hint = bad
                .as_ref()
                .and_then(|b| did_you_mean(b, CONFIG_KEYS.iter().copied()))
                .map(|h| h.replacen('`', "`+", 1));
            ProjectError::invalid(format!("invalid config in `{kind}:`: {message}"), location, hint)
        })
    }
}

/// Tells whether a key of a dbt config tree, written without `+`, is a
/// config rather than a folder.
fn is_config_key(key: &str) -> bool {
    CONFIG_KEYS.contains(&key) || config::DBT_UNUSED_KEYS.contains(&key) || config::DBT_UNSUPPORTED_KEYS.contains(&key)
}

/// Removes the dbt config keys `wh` does not use from a config map (keys
/// without `+`), noting each: `what` names it, `at` places it.
pub fn note_dbt_keys(
    map: &mut Map<String, Json>,
    what: impl Fn(&str) -> String,
    at: impl Fn(&str) -> Location,
) -> Vec<CompatNote> {
    config::take_dbt_only_keys(map)
        .into_iter()
        .map(|key| CompatNote {
            kind: if config::DBT_UNSUPPORTED_KEYS.contains(&key.as_str()) {
                CompatKind::Unsupported
            } else {
                CompatKind::Ignored
            },
            what: what(&key),
            detail: dbt_key_detail(&key),
            location: Some(at(&key)),
        })
        .collect()
}

/// What the compatibility report says of a dbt config key `wh` does not use.
pub fn dbt_key_detail(key: &str) -> String {
    match key {
        "pre-hook" | "post-hook" | "pre_hook" | "post_hook" => {
            "hooks run SQL against a database; wh does not run them".into()
        }
        "incremental_predicates" => "not applied: the merge considers every published row".into(),
        "schema" | "database" => "accepted; tables land at <folder>/<model>.parquet whatever the schema".into(),
        "alias" => "accepted; the table keeps the model's name".into(),
        "persist_docs" | "docs" => "accepted; descriptions are in the manifest and the docs site".into(),
        _ => "accepted; it has no effect on what wh builds".into(),
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
