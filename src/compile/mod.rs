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
use crate::project::config::{ColumnDef, ConfigPatch, Materialization, ModelConfig, CONFIG_KEYS};
use crate::project::{Project, SourceTable};

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
    pub sql: String,
    pub config: ModelConfig,
    pub refs: BTreeSet<String>,
    /// Source keys (`source.table`) the model reads.
    pub sources: BTreeSet<String>,
    pub description: String,
    pub columns: Vec<ColumnDef>,
    pub tests: Vec<Json>,
}

impl CompiledModel {
    /// Returns the Parquet path inside the warehouse for a table model,
    /// e.g. `marts/mart_customer_rfm.parquet`.
    pub fn output_path(&self) -> Option<String> {
        (self.config.materialized == Materialization::Table).then(|| {
            let mut parts = self.folder.clone();
            parts.push(format!("{}.parquet", self.name));
            parts.join("/")
        })
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
    pub models: BTreeMap<String, CompiledModel>,
    pub sources: BTreeMap<String, CompiledSource>,
}

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
#[derive(Default)]
struct Recorder {
    refs: BTreeSet<String>,
    sources: BTreeSet<String>,
    configs: Vec<Json>,
    hint: Option<String>,
}

type Shared = Arc<Mutex<Recorder>>;

fn lock(rec: &Shared) -> MutexGuard<'_, Recorder> {
    rec.lock().unwrap_or_else(|e| e.into_inner())
}

/// Renders every model and source location of `project`.
pub fn compile(project: &Project) -> Result<Compiled, CompileError> {
    let rec: Shared = Arc::default();
    let env = environment(project, &rec)?;

    let mut sources = BTreeMap::new();
    for (key, table) in &project.sources {
        let location = match &table.location_template {
            Some(t) => render_str(&env, t, &table.defined_at, &rec)?,
            None => {
                return Err(CompileError {
                    message: format!("source table `{key}` has no `location`"),
                    location: table.defined_at.clone(),
                    hint: Some("add `location: path/to/file.parquet` (a file, directory, glob or URL)".into()),
                })
            }
        };
        let location = resolve_location(project, location.trim());
        let unique_id = format!("source.{}.{}", project.name, key);
        sources.insert(key.clone(), CompiledSource { table: table.clone(), unique_id, location });
    }

    let mut models = BTreeMap::new();
    for (name, mut config) in declared_configs(project) {
        let file = &project.models[&name];
        *lock(&rec) = Recorder::default();
        let template_name = file.path.to_string_lossy().replace('\\', "/");
        let ctx = context! {
            this => relation(&name),
            target => context! { name => project.target.name.clone(), warehouse => project.target.warehouse.clone() },
            model => context! { name => name.clone(), path => template_name.clone() },
        };
        let sql = env
            .get_template(&template_name)
            .and_then(|t| t.render(ctx))
            .map_err(|err| template_error(&err, &rec, &template_name))?;
        let recorded = std::mem::take(&mut *lock(&rec));
        for patch in &recorded.configs {
            config.apply(&config_patch(patch, file.text.as_str(), &file.path)?);
        }
        let declared = project.props.get(&name);
        let (description, columns, tests) = match declared {
            Some(d) => {
                let mut tests = d.props.tests.clone();
                tests.extend(d.props.data_tests.clone());
                (d.props.description.clone(), d.props.columns.clone(), tests)
            }
            None => Default::default(),
        };
        models.insert(
            name.clone(),
            CompiledModel {
                unique_id: format!("model.{}.{}", project.name, name),
                name,
                path: file.path.clone(),
                folder: file.folder.clone(),
                raw_sql: file.text.clone(),
                sql: sql.trim().to_string(),
                config,
                refs: recorded.refs,
                sources: recorded.sources,
                description,
                columns,
                tests,
            },
        );
    }
    drop_disabled(&mut models)?;
    Ok(Compiled { project_name: project.name.clone(), models, sources })
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
            if let Some(patch) = &d.props.config {
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

fn environment<'a>(project: &'a Project, rec: &Shared) -> Result<Environment<'a>, CompileError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);

    let models: Arc<BTreeSet<String>> = Arc::new(project.models.keys().cloned().collect());
    let r = rec.clone();
    env.add_function("ref", move |first: String, second: Option<String>| -> Result<String, minijinja::Error> {
        // `ref('package', 'model')` names the model last.
        let name = second.unwrap_or(first);
        if !models.contains(&name) {
            lock(&r).hint = did_you_mean(&name, models.iter().map(String::as_str));
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("unknown model `{name}` in ref()")));
        }
        lock(&r).refs.insert(name.clone());
        Ok(relation(&name))
    });

    let source_keys: Arc<BTreeSet<String>> = Arc::new(project.sources.keys().cloned().collect());
    let r = rec.clone();
    env.add_function("source", move |source: String, table: String| -> Result<String, minijinja::Error> {
        let key = format!("{source}.{table}");
        if !source_keys.contains(&key) {
            lock(&r).hint = did_you_mean(&key, source_keys.iter().map(String::as_str))
                .map(|h| h.replace('`', "'"))
                .or_else(|| Some("declare it under `sources:` in sources.yml".into()));
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("unknown source `{key}` in source()"),
            ));
        }
        lock(&r).sources.insert(key);
        Ok(source_relation(&source, &table))
    });

    let vars = Arc::new(project.vars.clone());
    let r = rec.clone();
    // `Rest` rather than `Option`: `var('x', none)` gives a default of none.
    env.add_function("var", move |name: String, default: Rest<Value>| -> Result<Value, minijinja::Error> {
        match (vars.get(&name), default.first().cloned()) {
            (Some(v), _) => Ok(Value::from_serialize(v)),
            (None, Some(d)) => Ok(d),
            (None, None) => {
                lock(&r).hint = Some(format!("set it in `vars:` of wh_project.yml or with --vars '{{{name}: ...}}'"));
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("required var `{name}` is not set")))
            }
        }
    });

    let r = rec.clone();
    env.add_function("env_var", move |name: String, default: Option<String>| -> Result<String, minijinja::Error> {
        match (std::env::var(&name), default) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(d)) => Ok(d),
            (Err(_), None) => {
                lock(&r).hint = Some(format!("export {name}=... or give a default: env_var('{name}', 'value')"));
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("environment variable `{name}` is not set"),
                ))
            }
        }
    });

    let r = rec.clone();
    env.add_function("config", move |kwargs: Kwargs| -> Result<String, minijinja::Error> {
        let mut map = serde_json::Map::new();
        for key in kwargs.args() {
            let value: Value = kwargs.get(key)?;
            let json = serde_json::to_value(&value)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            map.insert(key.to_string(), json);
        }
        lock(&r).configs.push(Json::Object(map));
        Ok(String::new())
    });

    env.add_function("is_incremental", || false);

    for file in &project.macros {
        let name = file.path.to_string_lossy().replace('\\', "/");
        env.add_template_owned(name.clone(), file.text.clone()).map_err(|e| template_error(&e, rec, &name))?;
        let exports: Vec<String> = {
            let tmpl = env.get_template(&name).map_err(|e| template_error(&e, rec, &name))?;
            let captured = tmpl.render_captured(()).map_err(|e| template_error(&e, rec, &name))?;
            captured.state().exports().iter().map(|s| s.to_string()).collect()
        };
        for macro_name in exports {
            let template = name.clone();
            let callee = macro_name.clone();
            env.add_function(macro_name, move |state: &State, args: Rest<Value>| -> Result<Value, minijinja::Error> {
                let tmpl = state.env().get_template(&template)?;
                let captured = tmpl.render_captured(())?;
                let macro_state = captured.state();
                let value = macro_state.lookup(&callee).ok_or_else(|| {
                    minijinja::Error::new(ErrorKind::UnknownFunction, format!("macro `{callee}` vanished"))
                })?;
                value.call(macro_state, &args)
            });
        }
    }
    for file in project.models.values() {
        let tname = file.path.to_string_lossy().replace('\\', "/");
        env.add_template_owned(tname.clone(), file.text.clone()).map_err(|e| template_error(&e, rec, &tname))?;
    }
    Ok(env)
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
    let mut hint = lock(rec).hint.take();
    if hint.is_none() && err.kind() == ErrorKind::UndefinedError {
        hint = Some(
            "available: ref, source, config, var, env_var, is_incremental, this, target, and macros from macros/"
                .into(),
        );
    }
    CompileError { message: format!("template error: {message}"), location: Location::at(file, line, 0), hint }
}

fn config_patch(patch: &Json, text: &str, path: &std::path::Path) -> Result<ConfigPatch, CompileError> {
    serde_json::from_value(patch.clone()).map_err(|err| {
        let (line, col) = find_in_text(text, "config(").unwrap_or((0, 0));
        let message = err.to_string();
        let hint = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .and_then(|bad| did_you_mean(bad, CONFIG_KEYS.iter().copied()));
        CompileError { message: format!("invalid config(): {message}"), location: Location::at(path, line, col), hint }
    })
}

fn resolve_location(project: &Project, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let p = PathBuf::from(location);
    let abs = if p.is_absolute() { p } else { project.root.join(p) };
    abs.to_string_lossy().into_owned()
}
