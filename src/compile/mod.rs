//! Renders models with minijinja: `ref`, `source`, `config`, `var`,
//! `env_var`, `is_incremental`, `this` and user macros. Rendering records each
//! model's dependencies; no data is read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::value::{Kwargs, Rest};
use minijinja::{context, Environment, ErrorKind, State, UndefinedBehavior, Value};
use serde_json::Value as Json;

use crate::diagnostic::{did_you_mean, find_in_text, Location};
use crate::project::config::{ColumnDef, ConfigPatch, Hook, Materialization, ModelConfig, TableFormat, CONFIG_KEYS};
use crate::project::{CompatNote, Project, SourceTable};

pub mod assertions;
pub mod checksum;
mod dbt_context;
mod environment;
pub mod macros;
mod nodes;
mod render;
pub mod unit_tests;

use environment::environment;
use nodes::{analyses, assertions};
use render::{render_models, Rendered};

use assertions::sql::{self as test_sql, Declared, Parsed};
use assertions::{Assertion, Subject};
use dbt_context::Relation;

/// A template or config problem found while rendering: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
    pub location: Location,
    pub hint: Option<String>,
}

/// A rendered model, ready for the graph and the engine.
#[derive(Debug, Clone)]
pub struct CompiledModel {
    pub name: String,
    /// dbt-style id: `model.<project>.<name>`.
    pub unique_id: String,
    pub path: PathBuf,
    pub folder: Vec<String>,
    pub raw_sql: String,
    /// The SQL of a full build (`is_incremental()` false).
    pub sql: String,
    /// `sql` with this invocation's `run_started_at` and `invocation_id`
    /// put back as their names: what the model is, whenever it is
    /// compiled (its manifest checksum).
    pub definition: String,
    /// For an incremental model, the SQL rendered with `is_incremental()`
    /// true: the new rows to merge into the published table.
    pub incremental_sql: Option<String>,
    pub config: ModelConfig,
    pub refs: BTreeSet<String>,
    /// The project macros its rendering called (directly or not).
    pub macros: BTreeSet<String>,
    /// Source keys (`source.table`) the model reads.
    pub sources: BTreeSet<String>,
    pub description: String,
    /// `public` or `internal` (dbt's `protected` and `private` read as internal).
    pub access: String,
    pub columns: Vec<ColumnDef>,
    pub tests: Vec<Json>,
    /// Where the model's YAML properties are, if any.
    pub props_at: Option<Location>,
    /// Its hooks, rendered (empty ones left out): run on the session before
    /// it is built and after.
    pub pre_hooks: Vec<Hook>,
    pub post_hooks: Vec<Hook>,
}

impl CompiledModel {
    /// Returns the Parquet path inside the warehouse for a table model,
    /// e.g. `marts/mart_customer_rfm.parquet`.
    /// For a Delta table, the table's folder.
    pub fn output_path(&self) -> Option<String> {
        self.config.materialized.writes_table().then(|| {
            let mut parts = self.folder.clone();
            parts.push(match self.config.format {
                TableFormat::Parquet if self.config.partition_by.is_empty() => format!("{}.parquet", self.name),
                _ => self.name.clone(),
            });
            parts.join("/")
        })
    }

    /// Returns where its SQL is written under `target/compiled/`: the full
    /// build's, and an incremental model's incremental SQL beside it
    /// (`x.incremental.sql`). A snapshot is `<its file's folder>/<name>.sql`,
    /// since one file may hold several.
    pub fn compiled_paths(&self) -> (PathBuf, Option<PathBuf>) {
        let full = if matches!(self.config.materialized, Materialization::Snapshot | Materialization::Seed) {
            self.path.with_file_name(format!("{}.sql", self.name))
        } else {
            self.path.clone()
        };
        let incremental = self.incremental_sql.as_ref().map(|_| full.with_extension("incremental.sql"));
        (full, incremental)
    }

    /// Returns whether the model publishes partitioned Parquet: versioned
    /// Hive-style folders under its folder, and a pointer to the current one.
    pub fn is_partitioned_parquet(&self) -> bool {
        self.config.materialized.writes_table()
            && self.config.format == TableFormat::Parquet
            && !self.config.partition_by.is_empty()
    }

    /// Returns whether the model publishes a Delta table.
    pub fn is_delta(&self) -> bool {
        self.config.materialized.writes_table() && self.config.format == TableFormat::Delta
    }
}

/// A source table with its location rendered and resolved.
#[derive(Debug, Clone)]
pub struct CompiledSource {
    pub table: SourceTable,
    /// `source.<project>.<source>.<table>`.
    pub unique_id: String,
    /// Absolute local path (file, directory or glob) or URL.
    pub location: String,
}

/// Every enabled model and every source of a project, rendered.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub project_name: String,
    /// The target's schema (`main` unless set): the schema the artifacts
    /// name every model in.
    pub schema: String,
    pub models: BTreeMap<String, CompiledModel>,
    /// The project's macros, by name.
    pub macros: Vec<macros::MacroDef>,
    pub sources: BTreeMap<String, CompiledSource>,
    /// Every assertion: YAML tests on models, columns and sources, and
    /// singular tests.
    pub assertions: Vec<Assertion>,
    /// The project's compatibility notes and those found while rendering.
    pub compat: Vec<CompatNote>,
    /// Analyses, rendered: their paths and SQL (compiled, never run).
    pub analyses: Vec<(PathBuf, String)>,
    /// Unit tests, by unique id.
    pub unit_tests: Vec<unit_tests::UnitTest>,
    /// `on-run-start`, rendered (empty ones left out); `on-run-end` is
    /// rendered once the models ran ([`render_run_end`]).
    pub on_run_start: Vec<Hook>,
}

impl Compiled {
    /// Tells whether any hook runs: what hooks create on the session is
    /// unknown until they run, so a model reading it cannot be planned
    /// before the build.
    pub fn has_hooks(&self) -> bool {
        !self.on_run_start.is_empty()
            || self.models.values().any(|m| !m.pre_hooks.is_empty() || !m.post_hooks.is_empty())
    }
}

/// What a list of models that cannot be planned adds when hooks run.
pub const HOOKS_PLANNING_NOTE: &str =
    "a table a hook creates exists only once the hook runs: a model reading one plans when the build runs it";

/// Returns the SQL relation a model renders to.
pub fn relation(model: &str) -> String {
    quote_ident(model)
}

/// Returns the SQL relation a source table renders to.
pub fn source_relation(source: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(source), quote_ident(table))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What rendering one template recorded.
#[derive(Debug, Default)]
struct Recorder {
    refs: BTreeSet<String>,
    /// The project macros called, directly or through other macros.
    macros: BTreeSet<String>,
    sources: BTreeSet<String>,
    configs: Vec<Json>,
    hint: Option<String>,
    /// What `is_incremental()` answers while rendering.
    incremental: bool,
    /// The model being rendered: `this` in the macros it calls.
    this: Option<String>,
}

/// `this` as macros see it: the model being rendered.
#[derive(Debug)]
struct CurrentThis {
    rec: Shared,
    schema: String,
}

impl CurrentThis {
    fn relation(&self) -> Option<Relation> {
        let name = lock(&self.rec).this.clone()?;
        Some(Relation { name, schema: self.schema.clone() })
    }
}

impl minijinja::value::Object for CurrentThis {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Arc::new(self.relation()?).get_value(key)
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.relation() {
            Some(r) => Arc::new(r).render(f),
            None => Ok(()),
        }
    }
}

type Shared = Arc<Mutex<Recorder>>;

fn lock(rec: &Shared) -> MutexGuard<'_, Recorder> {
    rec.lock().unwrap_or_else(|e| e.into_inner())
}

/// Renders every model and source location of `project`.
pub fn compile(project: &Project) -> Result<Compiled, CompileError> {
    let rec: Shared = Arc::default();
    let names: Arc<BTreeSet<String>> = Arc::new(project.models.keys().cloned().collect());
    let env = environment(project, &rec, names.clone())?;

    let mut sources = BTreeMap::new();
    for (key, table) in &project.sources {
        let location = match &table.location_template {
            Some(t) => render_str(&env, t, &table.defined_at, &rec)?,
            None => {
                return Err(CompileError {
                    message: format!("source table `{key}` has no `location`"),
                    location: table.defined_at.clone(),
                    hint: Some(
                        "add `location: path/to/file.parquet` (a file, directory, glob or URL), or dbt-duckdb's \
                         `meta: {external_location: ...}`"
                            .into(),
                    ),
                })
            }
        };
        let location = resolve_location(project, location.trim());
        let unique_id = format!("source.{}.{}", project.name, key);
        sources.insert(key.clone(), CompiledSource { table: table.clone(), unique_id, location });
    }

    let started = run_started_at(project);
    let mut compat = project.compat.clone();
    let mut models = BTreeMap::new();
    for rendered in render_models(project, &names, declared_configs(project), &started)? {
        let Rendered { model, notes } = rendered;
        if model.config.materialized == Materialization::Seed {
            if let Some(src) = sources.get_mut(&format!("{}.{}", crate::project::SEED_SOURCE, model.name)) {
                src.table.column_types = model.config.column_types.clone();
                src.table.delimiter = model.config.delimiter.unwrap_or(',');
            }
        }
        compat.extend(notes);
        models.insert(model.name.clone(), model);
    }
    drop_disabled(&mut models)?;
    let assertions = assertions(project, &env, &rec, &models)?;
    let analyses = analyses(project, &env, &rec, &models)?;
    let unit_tests = unit_tests::unit_tests(project, &names, &models)?;
    *lock(&rec) = Recorder::default();
    let on_run_start = render_hooks(&env, &rec, &project.on_run_start, Value::UNDEFINED, project.file_name)?;
    Ok(Compiled {
        project_name: project.name.clone(),
        schema: project.target.schema.clone(),
        macros: macros::definitions(&project.macros),
        models,
        sources,
        assertions,
        compat,
        analyses,
        unit_tests,
        on_run_start,
    })
}

/// Renders the project's `on-run-end` hooks once the models ran, with
/// dbt's `results` (one per model and test: `status`, `message`,
/// `execution_time`, `failures`, `node.name`, `node.unique_id`,
/// `node.resource_type`) and `schemas` in their context.
pub fn render_run_end(project: &Project, results: &Json) -> Result<Vec<Hook>, CompileError> {
    let rec: Shared = Arc::default();
    let env = environment(project, &rec, Arc::new(project.models.keys().cloned().collect()))?;
    let ctx = context! { results => Value::from_serialize(results), schemas => vec![project.target.schema.clone()] };
    render_hooks(&env, &rec, &project.on_run_end, ctx, project.file_name)
}

/// Renders hooks in the context `ctx` (a model's, or none for the run's
/// hooks); a hook that renders to nothing is left out, as dbt does.
fn render_hooks(
    env: &Environment<'_>,
    rec: &Shared,
    hooks: &[Hook],
    ctx: Value,
    file: &str,
) -> Result<Vec<Hook>, CompileError> {
    let mut out = Vec::new();
    for hook in hooks {
        let at = hook.at.clone().unwrap_or_else(|| Location::file(file));
        let sql = env.render_str(&hook.sql, &ctx).map_err(|err| {
            let mut e = template_error(&err, rec, file);
            e.message = format!("cannot render a hook: {}", e.message);
            e.location = at.clone();
            e
        })?;
        if !sql.trim().is_empty() {
            out.push(Hook { sql: sql.trim().to_string(), ..hook.clone() });
        }
    }
    Ok(out)
}

/// Resolves folder and YAML configs; `config()` in SQL is applied after
/// rendering.
fn declared_configs(project: &Project) -> BTreeMap<String, ModelConfig> {
    let mut out = BTreeMap::new();
    for (name, file) in &project.models {
        let mut config = ModelConfig::default();
        for patch in project.configs_for(file) {
            config.apply(patch);
        }
        if let Some(d) = project.props.get(name) {
            if let Some(patch) = &d.config {
                config.apply(patch);
            }
            config.apply(&ConfigPatch {
                tags: Some(d.props.tags.clone()),
                meta: Some(d.props.meta.clone()),
                ..Default::default()
            });
        }
        out.insert(name.clone(), config);
    }
    out
}

/// Returns `run_started_at` as templates render it (UTC, microseconds).
fn run_started_at(project: &Project) -> String {
    dbt_context::started_text(&project.run_started_at)
}

/// Checks the settings an incremental model or a snapshot needs.
fn check_config(name: &str, config: &ModelConfig, file: &crate::project::ModelFile) -> Result<(), CompileError> {
    use crate::project::config::{IncrementalStrategy as S, SnapshotStrategy};
    let fail = |message: String, hint: &str| {
        let (line, col) = find_in_text(&file.text, "config(").unwrap_or((0, 0));
        Err(CompileError {
            message: format!("{} `{name}`: {message}", config.materialized.as_str()),
            location: Location::at(&file.path, line, col),
            hint: Some(hint.to_string()),
        })
    };
    match config.materialized {
        Materialization::Incremental => {
            let strategy = config.incremental_strategy.unwrap_or_default();
            if matches!(strategy, S::Merge | S::DeleteInsert) && config.unique_key.is_empty() {
                return fail(
                    format!("the `{}` strategy needs a `unique_key`", strategy.as_str()),
                    "add unique_key='id' (or a list of columns) to config(), or use incremental_strategy='append'",
                );
            }
            if config.delete_flag.is_some() && !matches!(strategy, S::Merge | S::DeleteInsert) {
                return fail(
                    format!(
                        "`delete_flag` deletes by `unique_key`, which the `{}` strategy does not use",
                        strategy.as_str()
                    ),
                    "use incremental_strategy='delete+insert' or 'merge' with a unique_key",
                );
            }
            if strategy == S::InsertOverwrite && config.partition_by.is_empty() {
                return fail(
                    "the `insert_overwrite` strategy needs `partition_by`".into(),
                    "add partition_by=['column'] to config(): the partitions the new rows hold are replaced",
                );
            }
        }
        Materialization::Snapshot => {
            if config.unique_key.is_empty() {
                return fail("a snapshot needs a `unique_key`".into(), "add unique_key='id' to its config()");
            }
            match config.strategy {
                None => {
                    return fail(
                        "a snapshot needs a `strategy`".into(),
                        "add strategy='timestamp', updated_at='column' or strategy='check', check_cols=['a', 'b'] (or 'all')",
                    )
                }
                Some(SnapshotStrategy::Timestamp) if config.updated_at.is_none() => {
                    return fail(
                        "the `timestamp` strategy needs `updated_at`".into(),
                        "add updated_at='column' (when each row last changed) to its config()",
                    )
                }
                Some(SnapshotStrategy::Check) if config.check_cols.is_empty() => {
                    return fail(
                        "the `check` strategy needs `check_cols`".into(),
                        "add check_cols=['a', 'b'] (or check_cols='all') to its config()",
                    )
                }
                _ => {}
            }
        }
        _ => {}
    }
    if let Some(spec) = &config.forecast {
        let plain = config.materialized == Materialization::Table
            && config.format == TableFormat::Parquet
            && config.partition_by.is_empty();
        if !plain {
            return fail(
                "a forecast is a plain table: `forecast` cannot be combined with this materialization or format".into(),
                "remove `forecast` from the config, or make the model materialized='table' without format or partition_by",
            );
        }
        if let Some(problem) = spec.problem() {
            return fail(problem, "see docs/src/monitoring.md, Forecasts");
        }
    }
    Ok(())
}

/// Drops disabled models; a reference to one is an error.
fn drop_disabled(models: &mut BTreeMap<String, CompiledModel>) -> Result<(), CompileError> {
    let disabled: BTreeSet<String> = models.values().filter(|m| !m.config.enabled).map(|m| m.name.clone()).collect();
    models.retain(|_, m| m.config.enabled);
    for m in models.values() {
        if let Some(d) = m.refs.iter().find(|r| disabled.contains(*r)) {
            let (line, col) = find_in_text(&m.raw_sql, &format!("ref('{d}')")).unwrap_or((0, 0));
            return Err(CompileError {
                message: format!("model `{}` references model `{d}`, which is disabled", m.name),
                location: Location::at(&m.path, line, col),
                hint: Some(format!("enable `{d}` or remove the reference")),
            });
        }
    }
    Ok(())
}

fn render_str(env: &Environment<'_>, template: &str, at: &Location, rec: &Shared) -> Result<String, CompileError> {
    env.render_str(template, ()).map_err(|err| {
        let mut e = template_error(&err, rec, &at.file.to_string_lossy());
        e.location = at.clone();
        e
    })
}

fn template_error(err: &minijinja::Error, rec: &Shared, fallback: &str) -> CompileError {
    let file = err.name().unwrap_or(fallback).to_string();
    let line = err.line().unwrap_or(0);
    let message = match err.detail() {
        Some(detail) => detail.to_string(),
        None => err.kind().to_string(),
    };
    let mut hint = lock(rec).hint.take().or_else(|| dbt_context::jinja2_hint(&message));
    if hint.is_none() && err.kind() == ErrorKind::UndefinedError {
        hint = Some(
            "available: ref, source, config, var, env_var, is_incremental, this, target, run_started_at, \
             invocation_id, and macros from macros/"
                .into(),
        );
    }
    CompileError { message: format!("template error: {message}"), location: Location::at(file, line, 0), hint }
}

fn config_patch(
    patch: &Json,
    text: &str,
    path: &std::path::Path,
    compat: &mut Vec<CompatNote>,
) -> Result<ConfigPatch, CompileError> {
    let mut patch = patch.clone();
    if let Json::Object(map) = &mut patch {
        compat.extend(crate::project::note_dbt_keys(
            map,
            |key| format!("config({key}=...)"),
            |key| {
                let (line, col) = find_in_text(text, key).unwrap_or((0, 0));
                Location::at(path, line, col)
            },
        ));
    }
    let mut patch: ConfigPatch = serde_json::from_value(patch).map_err(|err| {
        let (line, col) = find_in_text(text, "config(").unwrap_or((0, 0));
        let message = err.to_string();
        let hint = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .and_then(|bad| did_you_mean(bad, CONFIG_KEYS.iter().copied()));
        CompileError { message: format!("invalid config(): {message}"), location: Location::at(path, line, col), hint }
    })?;
    patch.locate_hooks(path, text);
    Ok(patch)
}

fn resolve_location(project: &Project, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let p = PathBuf::from(location);
    let abs = if p.is_absolute() { p } else { project.root.join(p) };
    abs.to_string_lossy().into_owned()
}

/// Rewrites dbt's `{% test name(...) %}...{% endtest %}` blocks as macros
/// named `test_name`, so generic tests are called like any macro.
fn test_blocks_as_macros(text: &str) -> String {
    let mut out = text.to_string();
    for open in ["{% test ", "{%- test ", "{%test "] {
        out = out.replace(open, &open.replace("test ", "macro test_"));
    }
    for close in ["{% endtest %}", "{%- endtest %}", "{% endtest -%}", "{%- endtest -%}", "{%endtest%}"] {
        out = out.replace(close, &close.replace("endtest", "endmacro"));
    }
    out
}
