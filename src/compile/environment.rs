//! The minijinja environment a project renders in: its macros, dbt's
//! context, and `ref`, `source`, `config`, `var`, `env_var` recording what
//! each model reads.

use super::*;

/// dbt's prefix of secret environment variables: allowed in profiles.yml
/// only, never rendered into SQL.
pub const SECRET_PREFIX: &str = "DBT_ENV_SECRET_";

/// The environment, given the project's model names (one set shared by the
/// environments that render a large project on several threads). Models are
/// not templates of the environment: each is compiled when it is rendered.
pub(super) fn environment<'a>(
    project: &'a Project,
    rec: &Shared,
    models: Arc<BTreeSet<String>>,
) -> Result<Environment<'a>, CompileError> {
    let mut env = Environment::new();
    // A dbt project gets Jinja2's undefined (empty when printed, false when
    // tested), as dbt renders with; wh's own projects fail on a typo.
    let dbt = project.file_name == crate::project::dbt::DBT_PROJECT_FILE;
    env.set_undefined_behavior(if dbt { UndefinedBehavior::Lenient } else { UndefinedBehavior::Strict });
    env.set_keep_trailing_newline(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    dbt_context::register(&mut env, project);
    env.add_global("this", Value::from_object(CurrentThis { rec: rec.clone(), schema: project.target.schema.clone() }));

    let r = rec.clone();
    let schema = project.target.schema.clone();
    env.add_function("ref", move |first: String, second: Option<String>| -> Result<Value, minijinja::Error> {
        // `ref('package', 'model')` names the model last.
        let name = second.unwrap_or(first);
        if !models.contains(&name) {
            lock(&r).hint = did_you_mean(&name, models.iter().map(String::as_str));
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("unknown model `{name}` in ref()")));
        }
        lock(&r).refs.insert(name.clone());
        Ok(Value::from_object(Relation { name, schema: schema.clone() }))
    });

    let source_keys: Arc<BTreeSet<String>> = Arc::new(project.sources.keys().cloned().collect());
    let r = rec.clone();
    env.add_function("source", move |source: String, table: String| -> Result<String, minijinja::Error> {
        let key = format!("{source}.{table}");
        if !source_keys.contains(&key) {
            lock(&r).hint = did_you_mean(&key, source_keys.iter().map(String::as_str))
                .or_else(|| Some("declare it under `sources:` in sources.yml".into()));
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("unknown source `{key}` in source()"),
            ));
        }
        lock(&r).sources.insert(key);
        Ok(source_relation(&source, &table))
    });

    env.add_function("var", var_function(Arc::new(project.vars.clone()), rec.clone()));
    env.add_function("env_var", env_var_function(Arc::default(), rec.clone()));

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

    let r = rec.clone();
    env.add_function("is_incremental", move || lock(&r).incremental);

    for file in &project.macros {
        let name = file.path.to_string_lossy().replace('\\', "/");
        env.add_template_owned(name.clone(), dbt_context::prefix_macros(&test_blocks_as_macros(&file.text)))
            .map_err(|e| template_error(&e, rec, &name))?;
        let exports: Vec<String> = {
            let tmpl = env.get_template(&name).map_err(|e| template_error(&e, rec, &name))?;
            let captured = tmpl.render_captured(()).map_err(|e| template_error(&e, rec, &name))?;
            captured.state().exports().iter().map(|s| s.to_string()).collect()
        };
        for inner in exports {
            let Some(macro_name) = inner.strip_prefix(dbt_context::MACRO_PREFIX).map(str::to_string) else {
                continue;
            };
            let template = name.clone();
            let r = rec.clone();
            env.add_function(
                macro_name.clone(),
                move |state: &State, args: Rest<Value>| -> Result<Value, minijinja::Error> {
                    let mut recorded = lock(&r);
                    if !recorded.macros.contains(&macro_name) {
                        recorded.macros.insert(macro_name.clone());
                    }
                    drop(recorded);
                    let tmpl = state.env().get_template(&template)?;
                    let captured = tmpl.render_captured(())?;
                    let macro_state = captured.state();
                    let value = macro_state.lookup(&inner).ok_or_else(|| {
                        minijinja::Error::new(ErrorKind::UnknownFunction, format!("macro `{inner}` vanished"))
                    })?;
                    let args = dbt_context::rendered_caller(state, &args)?;
                    dbt_context::returned(value.call(macro_state, &args))
                },
            );
        }
    }
    Ok(env)
}

/// `var(name, default)`: the project's (or a unit test's) vars.
pub(super) fn var_function(
    vars: Arc<BTreeMap<String, Json>>,
    rec: Shared,
) -> impl Fn(String, Rest<Value>) -> Result<Value, minijinja::Error> + Send + Sync + 'static {
    let r = rec;
    // `Rest` rather than `Option`: `var('x', none)` gives a default of none.
    move |name: String, default: Rest<Value>| -> Result<Value, minijinja::Error> {
        match (vars.get(&name), default.first().cloned()) {
            (Some(v), _) => Ok(Value::from_serialize(v)),
            (None, Some(d)) => Ok(d),
            (None, None) => {
                lock(&r).hint = Some(format!("set it in `vars:` of wh_project.yml or with --vars '{{{name}: ...}}'"));
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("required var `{name}` is not set")))
            }
        }
    }
}

/// `env_var(name, default)`: the process's environment, `fixed` (a unit
/// test's `env_vars`) first.
pub(super) fn env_var_function(
    fixed: Arc<BTreeMap<String, String>>,
    rec: Shared,
) -> impl Fn(String, Option<String>) -> Result<String, minijinja::Error> + Send + Sync + 'static {
    let r = rec;
    move |name: String, default: Option<String>| -> Result<String, minijinja::Error> {
        if name.starts_with(SECRET_PREFIX) {
            // As in dbt: a secret would be written to target/compiled/, the
            // manifest and the lineage events with the SQL.
            lock(&r).hint = Some(format!(
                "use `{SECRET_PREFIX}*` variables only where wh keeps them out of every file (profiles.yml); \
                 pass the value to the warehouse or source settings instead of the SQL"
            ));
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "`{name}` is a secret: {SECRET_PREFIX}* variables cannot be used in SQL or YAML that wh renders"
                ),
            ));
        }
        let value = fixed.get(&name).cloned().ok_or(()).or_else(|()| std::env::var(&name));
        match (value, default) {
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
    }
}
