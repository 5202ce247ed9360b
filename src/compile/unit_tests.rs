//! Unit tests, compiled: the model rendered as the test overrides it, each
//! mocked input named as the model reads it, and the given and expected
//! rows read from YAML, CSV or SQL (inline or a fixture file).

use super::*;
use crate::project::config::{FixtureDef, FixtureFormat, UnitOverrides, UnitTestDef};
use render::render_again;

/// The assertion kind unit tests report as.
pub const UNIT_KIND: &str = "unit";

/// A compiled unit test.
#[derive(Debug, Clone)]
pub struct UnitTest {
    pub name: String,
    /// `unit_test.<project>.<model>.<name>`, as dbt names it.
    pub unique_id: String,
    pub model: String,
    pub fqn: Vec<String>,
    /// The model's SQL as the test renders it (its overrides applied).
    pub sql: String,
    pub given: Vec<Given>,
    pub expect: Fixture,
    /// As declared, for the manifest.
    pub declared: UnitTestDef,
    pub defined_at: Location,
}

/// One mocked input.
#[derive(Debug, Clone)]
pub struct Given {
    pub input: Input,
    pub fixture: Fixture,
}

/// What a mocked input stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Model(String),
    Source(String, String),
    /// The model's own published table (an incremental model's `this`).
    This(String),
}

impl Input {
    /// Returns the relation the model's SQL reads it as.
    pub fn relation(&self) -> String {
        match self {
            Input::Model(m) | Input::This(m) => relation(m),
            Input::Source(s, t) => source_relation(s, t),
        }
    }

    /// Returns it as a unit test's `input:` says it.
    pub fn written(&self) -> String {
        match self {
            Input::Model(m) => format!("ref('{m}')"),
            Input::Source(s, t) => format!("source('{s}', '{t}')"),
            Input::This(_) => "this".into(),
        }
    }
}

/// Rows of an input or of the expected output.
#[derive(Debug, Clone, PartialEq)]
pub enum Fixture {
    /// Values as text (cast to the column's type when run), NULL as `None`;
    /// columns in the order first seen.
    Rows { columns: Vec<String>, rows: Vec<Vec<Option<String>>> },
    /// A query that returns the rows.
    Sql(String),
}

impl UnitTest {
    /// Returns the test as an assertion on its model, for results, JUnit
    /// and the test history.
    pub fn assertion(&self) -> Assertion {
        Assertion {
            unique_id: self.unique_id.clone(),
            name: self.name.clone(),
            kind: UNIT_KIND.into(),
            subject: Subject::Model(self.model.clone()),
            column: None,
            params: serde_json::Map::new(),
            severity: assertions::Severity::Error,
            warn_if: assertions::Threshold::ANY,
            error_if: assertions::Threshold::ANY,
            filter: None,
            failing_sql: self.sql.clone(),
            row_predicate: None,
            depends_on: BTreeSet::new(),
            defined_at: self.defined_at.clone(),
            monitor: None,
            fail_calc: None,
        }
    }
}

/// A unit test's problem, before it is placed in its file.
struct Problem(String, Option<String>);

impl Problem {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Problem {
        Problem(message.into(), hint.map(str::to_string))
    }
}

/// Compiles the project's unit tests; a test of a disabled model is
/// dropped with it, as in dbt.
pub(super) fn unit_tests(
    project: &Project,
    names: &Arc<BTreeSet<String>>,
    models: &BTreeMap<String, CompiledModel>,
) -> Result<Vec<UnitTest>, CompileError> {
    if project.unit_tests.is_empty() {
        return Ok(Vec::new());
    }
    let rec: Shared = Arc::default();
    let plain = environment(project, &rec, names.clone())?;
    let mut out = Vec::new();
    for (def, at) in &project.unit_tests {
        let Some(model) = models.get(&def.model) else {
            if project.models.contains_key(&def.model) {
                continue;
            }
            return Err(CompileError {
                message: format!("unit test `{}` tests unknown model `{}`", def.name, def.model),
                location: at.clone(),
                hint: did_you_mean(&def.model, models.keys().map(String::as_str)),
            });
        };
        let custom = match overrides_environment(&def.overrides) {
            true => Some(overridden(project, &rec, names, &def.overrides)?),
            false => None,
        };
        let env = custom.as_ref().unwrap_or(&plain);
        let compiled =
            compile_one(project, env, &rec, def, model, at).map_err(|Problem(message, hint)| CompileError {
                message: format!("unit test `{}` of model `{}`: {message}", def.name, def.model),
                location: at.clone(),
                hint,
            })?;
        out.push(compiled);
    }
    out.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
    Ok(out)
}

/// Whether the overrides need an environment of their own (`is_incremental`
/// is answered by the recorder).
fn overrides_environment(o: &UnitOverrides) -> bool {
    !o.vars.is_empty() || !o.env_vars.is_empty() || o.macros.keys().any(|k| k != "is_incremental")
}

/// Compiles one unit test with the environment it renders in.
fn compile_one(
    project: &Project,
    env: &Environment<'_>,
    rec: &Shared,
    def: &UnitTestDef,
    model: &CompiledModel,
    at: &Location,
) -> Result<UnitTest, Problem> {
    testable(model)?;
    let incremental = incremental_override(def, model)?;
    let (sql, read) = render_again(project, env, rec, model, incremental)
        .map_err(|e| Problem(format!("{} (rendering {})", e.message, e.location), e.hint))?;
    let mut given = Vec::new();
    for g in &def.given {
        let input = input_of(env, rec, &g.input, model)?;
        let seed = match &input {
            Input::Model(m) => project.models.get(m).filter(|f| f.seed),
            _ => None,
        };
        let fixture = fixture(project, &g.fixture(), seed)
            .map_err(|Problem(m, h)| Problem(format!("input `{}`: {m}", g.input), h))?;
        given.push(Given { input, fixture });
    }
    check_inputs(&read, &given, incremental && model.config.materialized == Materialization::Incremental)?;
    let expect = fixture(project, &def.expect, None).map_err(|Problem(m, h)| Problem(format!("expect: {m}"), h))?;
    let mut fqn = vec![project.name.clone()];
    fqn.extend(at.file.parent().into_iter().flat_map(|p| p.iter().skip(1)).map(|c| c.to_string_lossy().into_owned()));
    fqn.extend([def.model.clone(), def.name.clone()]);
    Ok(UnitTest {
        name: def.name.clone(),
        unique_id: format!("unit_test.{}.{}.{}", project.name, def.model, def.name),
        model: def.model.clone(),
        fqn,
        sql,
        given,
        expect,
        declared: def.clone(),
        defined_at: at.clone(),
    })
}

/// Unit tests test SQL models: not seeds, snapshots or forecasts.
fn testable(model: &CompiledModel) -> Result<(), Problem> {
    let what = match model.config.materialized {
        Materialization::Seed => Some("a seed"),
        Materialization::Snapshot => Some("a snapshot"),
        _ if model.config.forecast.is_some() => Some("a forecast"),
        _ => None,
    };
    match what {
        Some(what) => Err(Problem::new(format!("the model is {what}; unit tests test SQL models"), None)),
        None => Ok(()),
    }
}

/// Returns what `is_incremental()` answers in the test: an incremental
/// model's test must say (as in dbt).
fn incremental_override(def: &UnitTestDef, model: &CompiledModel) -> Result<bool, Problem> {
    match (def.overrides.macros.get("is_incremental"), model.config.materialized) {
        (Some(Json::Bool(b)), _) => Ok(*b),
        (Some(other), _) => Err(Problem::new(
            format!("`overrides.macros.is_incremental` is `{other}`, not true or false"),
            Some("write is_incremental: true (the incremental branch, with a `this` input) or false"),
        )),
        (None, Materialization::Incremental) => Err(Problem::new(
            "the model is incremental: the test must set `overrides.macros.is_incremental` to true or false",
            Some("add `overrides: {macros: {is_incremental: false}}` to test a full build"),
        )),
        (None, _) => Ok(false),
    }
}

/// Reads a `given` entry's `input:` by rendering it.
fn input_of(env: &Environment<'_>, rec: &Shared, input: &str, model: &CompiledModel) -> Result<Input, Problem> {
    if input.trim() == "this" {
        return Ok(Input::This(model.name.clone()));
    }
    let shape = Some("write ref('model'), source('source', 'table') or this");
    *lock(rec) = Recorder::default();
    let rendered = env.render_str(&format!("{{{{ {input} }}}}"), ());
    let recorded = std::mem::take(&mut *lock(rec));
    if let Err(e) = rendered {
        let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
        return Err(Problem(format!("input `{input}`: {detail}"), recorded.hint.or(shape.map(str::to_string))));
    }
    match (recorded.refs.iter().next(), recorded.sources.iter().next()) {
        (Some(m), None) if recorded.refs.len() == 1 => Ok(Input::Model(m.clone())),
        (None, Some(key)) if recorded.sources.len() == 1 => {
            let (s, t) = key.split_once('.').unwrap_or((key, ""));
            Ok(Input::Source(s.to_string(), t.to_string()))
        }
        _ => Err(Problem::new(format!("input `{input}` names no single model or source"), shape)),
    }
}

/// Every model and source the rendered SQL reads must be mocked, and an
/// incremental build's `this` too.
fn check_inputs(read: &Recorder, given: &[Given], reads_this: bool) -> Result<(), Problem> {
    let inputs: Vec<&Input> = given.iter().map(|g| &g.input).collect();
    let missing = read
        .refs
        .iter()
        .map(|m| Input::Model(m.clone()))
        .chain(read.sources.iter().map(|k| {
            let (s, t) = k.split_once('.').unwrap_or((k, ""));
            Input::Source(s.to_string(), t.to_string())
        }))
        .chain(reads_this.then(|| Input::This(String::new())))
        .find(|i| !inputs.iter().any(|g| *g == i || matches!((g, i), (Input::This(_), Input::This(_)))));
    match missing {
        None => Ok(()),
        Some(i) => Err(Problem(
            format!("the model reads `{}`, which `given` does not mock", i.written()),
            Some(format!("add `- input: {}` under `given:` (with `rows: []` for no rows)", i.written())),
        )),
    }
}

/// Reads rows as dbt's three formats give them; a seed given without rows
/// is its CSV file.
fn fixture(project: &Project, def: &FixtureDef, seed: Option<&crate::project::ModelFile>) -> Result<Fixture, Problem> {
    let from_file = |name: &str| -> Result<String, Problem> {
        let ext = def.format.extension();
        match project.fixture(name, ext) {
            Ok(Some((_, text))) => Ok(text),
            Ok(None) => Err(Problem(
                format!("no fixture file `{name}.{ext}`"),
                Some(format!("put it under {}/fixtures/", project.test_paths.join("/fixtures/ or "))),
            )),
            Err(e) => Err(Problem(e.to_string(), None)),
        }
    };
    match (def.format, &def.rows, &def.fixture) {
        (_, Some(_), Some(_)) => Err(Problem::new("give `rows` or `fixture`, not both", None)),
        (FixtureFormat::Dict, Some(Json::Array(rows)), None) => dict_rows(rows),
        (FixtureFormat::Dict, Some(_), _) => Err(Problem::new(
            "`rows` of format dict is a list of mappings",
            Some("write rows: [{id: 1, name: a}], or set `format: csv` or `format: sql` for text"),
        )),
        (FixtureFormat::Dict, None, Some(_)) => {
            Err(Problem::new("a fixture file is CSV or SQL", Some("add `format: csv` (or `format: sql`)")))
        }
        (FixtureFormat::Dict, None, None) => match seed {
            Some(file) => match std::fs::read_to_string(project.root.join(&file.path)) {
                Ok(text) => csv_rows(&text),
                Err(e) => Err(Problem(format!("cannot read the seed `{}`: {e}", file.path.display()), None)),
            },
            None => Err(Problem::new("no `rows`", Some("add rows: [] for no rows"))),
        },
        (FixtureFormat::Csv, Some(Json::String(text)), None) => csv_rows(text),
        (FixtureFormat::Csv, None, Some(name)) => csv_rows(&from_file(name)?),
        (FixtureFormat::Sql, Some(Json::String(text)), None) => Ok(Fixture::Sql(text.trim().to_string())),
        (FixtureFormat::Sql, None, Some(name)) => Ok(Fixture::Sql(from_file(name)?.trim().to_string())),
        (format, Some(_), None) => {
            Err(Problem::new(format!("`rows` of format {format:?} is text").to_lowercase(), Some("write rows: |")))
        }
        (_, None, None) => Err(Problem::new("no `rows` or `fixture`", None)),
    }
}

/// Reads a list of mappings; a key missing from a row is NULL there.
fn dict_rows(rows: &[Json]) -> Result<Fixture, Problem> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        let Json::Object(map) = row else {
            return Err(Problem::new(format!("the row `{row}` is not a mapping"), Some("write {column: value, ...}")));
        };
        for key in map.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let values = rows.iter().map(|row| columns.iter().map(|c| row.get(c).and_then(text_of)).collect()).collect();
    Ok(Fixture::Rows { columns, rows: values })
}

/// Returns a YAML value as the text it is cast from; null is `None`.
fn text_of(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Reads CSV with a header; an empty value is NULL (as in dbt).
fn csv_rows(text: &str) -> Result<Fixture, Problem> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let bad = |e: csv::Error| Problem::new(format!("the CSV cannot be read: {e}"), None);
    let columns: Vec<String> = reader.headers().map_err(bad)?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        rows.push(record.iter().map(|v| (!v.is_empty()).then(|| v.to_string())).collect());
    }
    Ok(Fixture::Rows { columns, rows })
}

/// The environment of a test that overrides vars, environment variables
/// or macros.
fn overridden<'a>(
    project: &'a Project,
    rec: &Shared,
    names: &Arc<BTreeSet<String>>,
    o: &UnitOverrides,
) -> Result<Environment<'a>, CompileError> {
    let mut env = environment(project, rec, names.clone())?;
    if !o.vars.is_empty() {
        let mut vars = project.vars.clone();
        vars.extend(o.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.add_function("var", environment::var_function(Arc::new(vars), rec.clone()));
    }
    if !o.env_vars.is_empty() {
        let fixed = o.env_vars.iter().map(|(k, v)| (k.clone(), text_of(v).unwrap_or_default())).collect();
        env.add_function("env_var", environment::env_var_function(Arc::new(fixed), rec.clone()));
    }
    for (name, value) in o.macros.iter().filter(|(k, _)| *k != "is_incremental") {
        env.add_global(name.clone(), Value::from_object(Fixed(Value::from_serialize(value))));
    }
    Ok(env)
}

/// An overridden macro or variable: called or printed, it is its value.
#[derive(Debug)]
struct Fixed(Value);

impl minijinja::value::Object for Fixed {
    fn call(self: &Arc<Self>, _state: &State<'_, '_>, _args: &[Value]) -> Result<Value, minijinja::Error> {
        Ok(self.0.clone())
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fixture_reads_empty_values_as_null() {
        let f = csv_rows("id,name\n1,\n2,b\n").unwrap_or_else(|p| panic!("{}", p.0));
        let rows = vec![vec![Some("1".to_string()), None], vec![Some("2".to_string()), Some("b".to_string())]];
        assert_eq!(f, Fixture::Rows { columns: vec!["id".into(), "name".into()], rows });
    }

    #[test]
    fn dict_fixture_keeps_first_seen_columns_and_fills_nulls() {
        let rows: Vec<Json> = serde_json::from_str(r#"[{"b": 1, "a": true}, {"c": "x"}, {"a": null}]"#).unwrap();
        let Fixture::Rows { columns, rows } = dict_rows(&rows).unwrap_or_else(|p| panic!("{}", p.0)) else {
            panic!("rows")
        };
        assert_eq!(columns, ["b", "a", "c"]);
        assert_eq!(rows[0], [Some("1".into()), Some("true".into()), None]);
        assert_eq!(rows[1], [None, None, Some("x".into())]);
        assert_eq!(rows[2], [None, None, None]);
    }
}
