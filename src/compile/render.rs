//! Rendering the models: each model's template once (twice for an
//! incremental model), on every core for a large project.

use super::*;

/// Below this many models a project renders on one thread: a second
/// environment costs more than it saves.
const MODELS_PER_WORKER: usize = 2_000;

/// One rendered model and the compatibility notes its `config()` added.
pub(super) struct Rendered {
    pub model: CompiledModel,
    pub notes: Vec<CompatNote>,
}

/// Renders every model of `configs` (folder and YAML configs resolved), in
/// name order. A large project is split into contiguous runs of names, one
/// per core, each rendered in its own environment; the first failing model
/// by name is the error, as on one thread.
pub(super) fn render_models(
    project: &Project,
    names: &Arc<BTreeSet<String>>,
    configs: BTreeMap<String, ModelConfig>,
    started: &str,
) -> Result<Vec<Rendered>, CompileError> {
    let todo: Vec<(String, ModelConfig)> = configs.into_iter().collect();
    let runs = crate::project::par_runs(&todo, MODELS_PER_WORKER, |run| vec![render_run(project, names, run, started)]);
    let mut out = Vec::with_capacity(todo.len());
    for run in runs {
        out.extend(run?);
    }
    Ok(out)
}

/// Renders a run of models in one environment of its own.
fn render_run(
    project: &Project,
    names: &Arc<BTreeSet<String>>,
    run: &[(String, ModelConfig)],
    started: &str,
) -> Result<Vec<Rendered>, CompileError> {
    let rec: Shared = Arc::default();
    let env = environment(project, &rec, names.clone())?;
    run.iter().map(|(name, config)| render_model(project, &env, &rec, name.clone(), config.clone(), started)).collect()
}

/// Renders one model: its SQL, the `config()` it calls applied, what it
/// reads, and its YAML properties.
fn render_model(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    name: String,
    mut config: ModelConfig,
    started: &str,
) -> Result<Rendered, CompileError> {
    let file = &project.models[&name];
    let template_name = template_name(file);
    let ctx = model_context(&name, &template_name, config.materialized);
    let template =
        env.template_from_named_str(&template_name, &file.text).map_err(|e| template_error(&e, rec, &template_name))?;
    // `this` is the global that reads the recorder: the same relation in the
    // model and in the macros it calls.
    let render = |incremental: bool| {
        *lock(rec) = Recorder { this: Some(name.clone()), incremental, ..Default::default() };
        let sql = template.render(&ctx).map_err(|err| template_error(&err, rec, &template_name));
        (sql, std::mem::take(&mut *lock(rec)))
    };
    let (sql, recorded) = render(false);
    let sql = sql?;
    let mut notes = Vec::new();
    for patch in &recorded.configs {
        config.apply(&config_patch(patch, file.text.as_str(), &file.path, &mut notes)?);
    }
    if file.snapshot {
        config.materialized = Materialization::Snapshot;
    }
    if file.seed {
        config.materialized = Materialization::Seed;
    }
    check_config(&name, &config, file)?;
    if let Some(spec) = config.forecast.as_mut() {
        spec.as_of = project.vars.get("as_of_date").and_then(|v| v.as_str()).map(str::to_string);
    }
    // An incremental model is also rendered as its incremental builds run
    // it; which one runs is decided when the build starts.
    let (mut refs, mut read_sources, mut macros) = (recorded.refs, recorded.sources, recorded.macros);
    let incremental_sql = if config.materialized == Materialization::Incremental {
        let (rendered, more) = render(true);
        // Refs made only in the incremental branch are dependencies too.
        refs.extend(more.refs);
        read_sources.extend(more.sources);
        macros.extend(more.macros);
        Some(rendered?.trim().to_string())
    } else {
        None
    };
    // Hooks render as the model does (`this` is the model); what they read
    // is not a dependency.
    *lock(rec) = Recorder { this: Some(name.clone()), ..Default::default() };
    let pre_hooks = render_hooks(env, rec, &config.pre_hook, ctx.clone(), &template_name)?;
    let post_hooks = render_hooks(env, rec, &config.post_hook, ctx.clone(), &template_name)?;
    *lock(rec) = Recorder::default();
    let model = CompiledModel {
        pre_hooks,
        post_hooks,
        unique_id: format!("{}.{}.{}", if file.seed { "seed" } else { "model" }, project.name, name),
        path: file.path.clone(),
        folder: file.folder.clone(),
        raw_sql: file.text.clone(),
        definition: sql
            .trim()
            .replace(started, "{{ run_started_at }}")
            .replace(&project.invocation_id, "{{ invocation_id }}"),
        sql: sql.trim().to_string(),
        incremental_sql,
        refs,
        sources: read_sources,
        macros,
        ..with_props(project, name, config)
    };
    Ok(Rendered { model, notes })
}

/// Returns the name a model's template renders under: its path.
fn template_name(file: &crate::project::ModelFile) -> String {
    file.path.to_string_lossy().replace('\\', "/")
}

/// Returns the `model` variable a model's template sees.
fn model_context(name: &str, template_name: &str, materialized: Materialization) -> Value {
    context! {
        model => context! { name => name, path => template_name, config => context! {
            materialized => materialized.as_str() } },
    }
}

/// Renders a model's template once more, `is_incremental()` answering
/// `incremental` (a unit test's rendering); returns its SQL and what it read.
pub(super) fn render_again(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    model: &CompiledModel,
    incremental: bool,
) -> Result<(String, Recorder), CompileError> {
    let file = &project.models[&model.name];
    let template_name = template_name(file);
    let ctx = model_context(&model.name, &template_name, model.config.materialized);
    let template =
        env.template_from_named_str(&template_name, &file.text).map_err(|e| template_error(&e, rec, &template_name))?;
    *lock(rec) = Recorder { this: Some(model.name.clone()), incremental, ..Default::default() };
    let sql = template.render(&ctx).map_err(|err| template_error(&err, rec, &template_name))?;
    Ok((sql.trim().to_string(), std::mem::take(&mut *lock(rec))))
}

/// A model with its YAML properties (description, access, columns, tests)
/// and everything rendering fills still empty.
fn with_props(project: &Project, name: String, config: ModelConfig) -> CompiledModel {
    let declared = project.props.get(&name);
    let (description, columns, tests) = match declared {
        Some(d) => {
            let mut tests = d.props.tests.clone();
            tests.extend(d.props.data_tests.clone());
            (d.props.description.clone(), d.props.columns.clone(), tests)
        }
        None => Default::default(),
    };
    let access = match declared.and_then(|d| d.props.access.as_deref()).or(config.access.as_deref()) {
        Some("public") => "public".to_string(),
        _ => "internal".to_string(),
    };
    CompiledModel {
        name,
        unique_id: String::new(),
        path: PathBuf::new(),
        folder: Vec::new(),
        raw_sql: String::new(),
        sql: String::new(),
        definition: String::new(),
        incremental_sql: None,
        config,
        refs: BTreeSet::new(),
        macros: BTreeSet::new(),
        sources: BTreeSet::new(),
        description,
        access,
        columns,
        tests,
        props_at: declared.map(|d| d.defined_at.clone()),
        pre_hooks: Vec::new(),
        post_hooks: Vec::new(),
    }
}
