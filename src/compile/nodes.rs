//! The nodes compiled besides models: assertions from YAML tests and
//! singular test files, and analyses.

use super::*;

/// Collects every assertion of the project: YAML tests on models, columns
/// and sources, and singular tests from the test paths.
pub(super) fn assertions(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    models: &BTreeMap<String, CompiledModel>,
) -> Result<Vec<Assertion>, CompileError> {
    let as_of = project.vars.get("as_of_date").and_then(|v| v.as_str()).map(str::to_string);
    let custom: std::collections::HashSet<String> =
        env.globals().filter_map(|(name, _)| name.strip_prefix("test_").map(str::to_string)).collect();
    let is_custom = |kind: &str| custom.contains(kind);
    let mut declared: Vec<(Subject, Option<String>, &Json, Location)> = Vec::new();
    for m in models.values() {
        let at = project.props.get(&m.name).map(|d| d.defined_at.clone()).unwrap_or_else(|| Location::file(&m.path));
        for t in &m.tests {
            declared.push((Subject::Model(m.name.clone()), None, t, at.clone()));
        }
        for c in &m.columns {
            for t in c.tests.iter().chain(&c.data_tests) {
                declared.push((Subject::Model(m.name.clone()), Some(c.name.clone()), t, at.clone()));
            }
        }
    }
    for (key, src) in &project.sources {
        for t in &src.tests {
            declared.push((Subject::Source(key.clone()), None, t, src.defined_at.clone()));
        }
        for c in &src.columns {
            for t in c.tests.iter().chain(&c.data_tests) {
                declared.push((Subject::Source(key.clone()), Some(c.name.clone()), t, src.defined_at.clone()));
            }
        }
    }
    let mut out: Vec<Assertion> = Vec::with_capacity(declared.len());
    for (subject, column, entry, at) in declared {
        let entry = &*render_test_config(env, rec, entry, &at)?;
        let d =
            Declared { project: &project.name, subject, column, entry, defined_at: at.clone(), as_of: as_of.clone() };
        let fail = |e: test_sql::InvalidTest| CompileError {
            message: format!("invalid test on `{}`: {}", d.subject.name(), e.message),
            location: at.clone(),
            hint: e.hint,
        };
        let limit = test_sql::limit(entry).map_err(|e| fail(e.into()))?;
        let mut assertion = match test_sql::parse(&d, &is_custom).map_err(fail)? {
            Parsed::Disabled => continue,
            Parsed::Builtin(a) => a,
            Parsed::Custom { kind, args, mut shell } => {
                let model_rel = match &shell.subject {
                    Subject::Model(m) => relation(m),
                    Subject::Source(k) => {
                        let (a, b) = k.split_once('.').unwrap_or((k, ""));
                        source_relation(a, b)
                    }
                };
                let model_rel = match &shell.filter {
                    Some(w) => format!("(select * from {model_rel} where {w}) as dbt_subquery"),
                    None => model_rel,
                };
                let mut kwargs = vec!["model=wh_model".to_string()];
                if shell.column.is_some() {
                    kwargs.push("column_name=wh_column".to_string());
                }
                kwargs.extend(args.keys().map(|k| format!("{k}=wh_args.{k}")));
                let call = format!("{{{{ test_{kind}({}) }}}}", kwargs.join(", "));
                *lock(rec) = Recorder::default();
                let ctx = context! { wh_model => model_rel, wh_column => shell.column.clone(), wh_args => args };
                let sql = env.render_str(&call, ctx).map_err(|e| {
                    let mut err = template_error(&e, rec, &at.file.to_string_lossy());
                    err.message = format!("test `{kind}` on `{}`: {}", shell.subject.name(), err.message);
                    err
                })?;
                shell.depends_on.extend(std::mem::take(&mut lock(rec).refs));
                shell.failing_sql = sql.trim().to_string();
                shell
            }
        };
        if let Some(n) = limit {
            assertion.failing_sql = format!("select * from ({}) as dbt_limited limit {n}", assertion.failing_sql);
            assertion.row_predicate = None;
        }
        if assertion.fail_calc.is_some() {
            // Counted by its own expression, not in the shared row scan.
            assertion.row_predicate = None;
        }
        out.push(assertion);
    }
    for dir in &project.test_paths {
        out.extend(singular_tests(project, env, rec, models, dir)?);
    }
    // Names must be unique: number repeats in declaration order.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for a in &mut out {
        let n = seen.entry(a.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            a.name = format!("{}_{}", a.name, n);
            a.unique_id = format!("test.{}.{}", project.name, a.name);
        }
    }
    Ok(out)
}

/// Test configs dbt renders as Jinja: a test's `where`, `enabled`,
/// `limit`, `severity`, `warn_if`, `error_if`, `fail_calc`, at its top level or under
/// `config:` (`where: "day > '{{ var(\"start\") }}'"`).
const RENDERED_TEST_CONFIGS: &[&str] = &["where", "enabled", "limit", "severity", "warn_if", "error_if", "fail_calc"];

/// Returns the test entry with its Jinja configs rendered.
fn render_test_config<'a>(
    env: &Environment<'_>,
    rec: &Shared,
    entry: &'a Json,
    at: &Location,
) -> Result<std::borrow::Cow<'a, Json>, CompileError> {
    let templated = |key: &&str| {
        test_sql::common_value(entry, key).and_then(Json::as_str).is_some_and(|t| t.contains("{{") || t.contains("{%"))
    };
    if !RENDERED_TEST_CONFIGS.iter().any(templated) {
        return Ok(std::borrow::Cow::Borrowed(entry));
    }
    let mut entry = entry.clone();
    if let Some(args) = entry.as_object_mut().and_then(|m| m.values_mut().next()).and_then(Json::as_object_mut) {
        render_configs(env, rec, args, at)?;
        if let Some(Json::Object(cfg)) = args.get_mut("config") {
            render_configs(env, rec, cfg, at)?;
        }
    }
    Ok(std::borrow::Cow::Owned(entry))
}

fn render_configs(
    env: &Environment<'_>,
    rec: &Shared,
    map: &mut serde_json::Map<String, Json>,
    at: &Location,
) -> Result<(), CompileError> {
    for key in RENDERED_TEST_CONFIGS {
        let Some(Json::String(text)) = map.get(*key) else { continue };
        if !text.contains("{{") && !text.contains("{%") {
            continue;
        }
        *lock(rec) = Recorder::default();
        let rendered = env.render_str(text, context! {}).map_err(|e| {
            let mut err = template_error(&e, rec, &at.file.to_string_lossy());
            err.message = format!("cannot render the test's `{key}`: {}", err.message);
            err.location = at.clone();
            err
        })?;
        map.insert(key.to_string(), Json::String(rendered.trim().to_string()));
    }
    Ok(())
}

/// Renders the analyses; a `ref()` to a model that does not exist (or is
/// disabled) is an error, as in a model.
pub(super) fn analyses(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    models: &BTreeMap<String, CompiledModel>,
) -> Result<Vec<(PathBuf, String)>, CompileError> {
    let mut out = Vec::new();
    for file in &project.analyses {
        let name = file.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        *lock(rec) = Recorder { this: Some(name), ..Default::default() };
        let sql = env.render_str(&file.text, context! {}).map_err(|e| {
            let mut err = template_error(&e, rec, &file.path.to_string_lossy());
            err.location.file = file.path.clone();
            err
        })?;
        let recorded = std::mem::take(&mut *lock(rec));
        if let Some(missing) = recorded.refs.iter().find(|r| !models.contains_key(*r)) {
            return Err(CompileError {
                message: format!("analysis `{}` references model `{missing}`, which is disabled", file.path.display()),
                location: Location::file(&file.path),
                hint: Some(format!("enable `{missing}` or remove the reference")),
            });
        }
        out.push((file.path.clone(), sql.trim().to_string()));
    }
    Ok(out)
}

/// Renders `.sql` files under a test path: each selects failing rows.
pub(super) fn singular_tests(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    models: &BTreeMap<String, CompiledModel>,
    dir: &str,
) -> Result<Vec<Assertion>, CompileError> {
    let base = project.root.join(dir);
    let mut out = Vec::new();
    if !base.is_dir() {
        return Ok(out);
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&base)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "sql"))
        // Generic tests (dbt's `tests/generic/`) are macros, and
        // `tests/fixtures/` holds unit tests' rows: neither is a singular test.
        .filter(|e| !e.path().strip_prefix(&base).is_ok_and(|p| p.starts_with("generic") || p.starts_with("fixtures")))
        .map(|e| e.path().strip_prefix(&project.root).unwrap_or(e.path()).to_path_buf())
        .collect();
    files.sort();
    for rel in files {
        let text = std::fs::read_to_string(project.root.join(&rel)).map_err(|e| CompileError {
            message: format!("cannot read `{}`: {e}", rel.display()),
            location: Location::file(&rel),
            hint: None,
        })?;
        let name = rel.file_stem().and_then(|s| s.to_str()).unwrap_or("singular").to_string();
        *lock(rec) = Recorder::default();
        let sql = env.render_str(&text, context! {}).map_err(|e| {
            let mut err = template_error(&e, rec, &rel.to_string_lossy());
            err.location.file = rel.clone();
            err
        })?;
        let recorded = std::mem::take(&mut *lock(rec));
        let severity =
            recorded
                .configs
                .iter()
                .find_map(|c| c.get("severity").and_then(Json::as_str))
                .map(|s| {
                    if s.eq_ignore_ascii_case("warn") {
                        assertions::Severity::Warn
                    } else {
                        assertions::Severity::Error
                    }
                })
                .unwrap_or(assertions::Severity::Error);
        let subject = match recorded.refs.iter().rfind(|r| models.contains_key(*r)) {
            Some(m) => Subject::Model(m.clone()),
            None => match recorded.sources.iter().next() {
                Some(s) => Subject::Source(s.clone()),
                None => {
                    return Err(CompileError {
                        message: format!("singular test `{name}` reads no model or source"),
                        location: Location::file(&rel),
                        hint: Some(
                            "select failing rows from {{ ref('model') }} or {{ source('src', 'table') }}".into(),
                        ),
                    })
                }
            },
        };
        let mut depends_on: BTreeSet<String> = recorded.refs.clone();
        if let Subject::Model(m) = &subject {
            depends_on.remove(m);
        }
        out.push(Assertion {
            unique_id: format!("test.{}.{name}", project.name),
            name,
            kind: "singular".into(),
            subject,
            column: None,
            params: serde_json::Map::new(),
            severity,
            warn_if: assertions::Threshold::ANY,
            error_if: assertions::Threshold::ANY,
            filter: None,
            failing_sql: sql.trim().trim_end_matches(';').to_string(),
            row_predicate: None,
            depends_on,
            defined_at: Location::file(&rel),
            monitor: None,
            fail_calc: None,
        });
    }
    Ok(out)
}
