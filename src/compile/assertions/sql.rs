//! Turns a declared test (`- not_null`, `- accepted_values: {values: [..]}`)
//! into an [`Assertion`] with the SQL that selects its failing rows.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use super::{Assertion, Severity, Subject, Threshold};
use crate::compile::{relation, source_relation};
use crate::diagnostic::Location;

/// The built-in test kinds, for hints.
pub const BUILTIN: &[&str] = &[
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "unique_combination_of_columns",
    "accepted_range",
    "expression_is_true",
    "not_empty",
    "matches_regex",
    "row_count",
    "recency",
    "equal_rowcount",
    "equal_sum",
    "volume",
    super::monitor::KIND,
];

/// Stands for a model's recent row count in a `volume` check's SQL until
/// the run fills it in from the warehouse's records (see state.rs).
pub const VOLUME_BASELINE: &str = "__wh_volume_baseline__";

/// Keys every test accepts, beside its own parameters.
const COMMON: &[&str] = &[
    "severity",
    "warn_if",
    "error_if",
    "where",
    "name",
    "config",
    "description",
    "meta",
    "tags",
    "enabled",
    "limit",
    "fail_calc",
    "store_failures",
    "store_failures_as",
    "alias",
    "schema",
    "database",
    "group",
];

/// One test as declared on a model, source or column.
pub struct Declared<'a> {
    pub project: &'a str,
    pub subject: Subject,
    pub column: Option<String>,
    pub entry: &'a Json,
    pub defined_at: Location,
    /// The `as_of_date` var, for `recency`.
    pub as_of: Option<String>,
}

/// A declared test, parsed: either built in (its SQL is known) or custom
/// (its SQL comes from rendering a `{% test %}` macro).
pub enum Parsed {
    Builtin(Assertion),
    Custom {
        kind: String,
        args: Map<String, Json>,
        shell: Assertion,
    },
    /// `enabled: false`: the test is left out, as in dbt.
    Disabled,
}

/// A common key of a test entry, given at its top level or under
/// `config:` (which wins, as in dbt).
pub fn common_value<'a>(entry: &'a Json, key: &str) -> Option<&'a Json> {
    let args = entry.as_object()?.values().next()?.as_object()?;
    args.get("config").and_then(|c| c.get(key)).or_else(|| args.get(key))
}

/// A test's `limit`: at most that many failing rows are counted.
pub fn limit(entry: &Json) -> Result<Option<u64>, String> {
    match common_value(entry, "limit") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Json::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(format!("`limit` is a number of rows, not `{other}`")),
    }
}

/// Reads a boolean config written as YAML or rendered from Jinja.
fn truthy(value: &Json) -> Option<bool> {
    match value {
        Json::Bool(b) => Some(*b),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A declared test that cannot be turned into an assertion.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvalidTest {
    pub message: String,
    pub hint: Option<String>,
}

impl From<String> for InvalidTest {
    fn from(message: String) -> Self {
        InvalidTest { message, hint: None }
    }
}

/// Returns the kind and arguments of a test entry.
fn kind_and_args(entry: &Json) -> Result<(String, Map<String, Json>), String> {
    match entry {
        Json::String(kind) => Ok((kind.clone(), Map::new())),
        Json::Object(map) if map.len() == 1 => {
            let (kind, args) = map.iter().next().ok_or("empty test entry")?;
            match args {
                Json::Object(a) => Ok((kind.clone(), a.clone())),
                Json::Null => Ok((kind.clone(), Map::new())),
                other => Err(format!("test `{kind}` takes a mapping of arguments, not `{other}`")),
            }
        }
        other => Err(format!("a test is a name or a one-key mapping `name: {{args}}`, not `{other}`")),
    }
}

/// Parses one declared test. `is_custom` tells whether a `{% test %}` macro
/// of that name exists.
pub fn parse(d: &Declared<'_>, is_custom: &dyn Fn(&str) -> bool) -> Result<Parsed, InvalidTest> {
    let (kind, mut args) = kind_and_args(d.entry)?;
    // dbt accepts common keys at the top level or under `config:`.
    if let Some(Json::Object(cfg)) = args.remove("config") {
        args.extend(cfg);
    }
    if let Some(enabled) = args.get("enabled") {
        match truthy(enabled) {
            Some(false) => return Ok(Parsed::Disabled),
            Some(true) => {}
            None => return Err(format!("`enabled` is true or false, not `{enabled}`").into()),
        }
    }
    let mut shell = shell(d, &kind, &args)?;
    if !BUILTIN.contains(&kind.as_str()) {
        if is_custom(&kind) {
            let params = shell.params.clone();
            return Ok(Parsed::Custom { kind, args: params, shell });
        }
        let hint = crate::diagnostic::did_you_mean(&kind, BUILTIN.iter().copied())
            .unwrap_or_else(|| "define it with {% test name(model, column_name) %} in macros/".into());
        return Err(InvalidTest { message: format!("unknown test `{kind}`"), hint: Some(hint) });
    }
    if kind == super::monitor::KIND {
        let m = super::monitor::parse(&shell.params, d.subject.name(), shell.filter.as_deref(), d.as_of.as_deref())?;
        shell.failing_sql = super::monitor::bucket_sql(&m, &scoped(d, &shell.filter), None);
        shell.monitor = Some(Box::new(m));
        return Ok(Parsed::Builtin(shell));
    }
    let mut b = Builtin { kind: &kind, d, params: &shell.params, scoped: scoped(d, &shell.filter), depends_on: None };
    let (failing_sql, row_predicate) = if ROW_TESTS.contains(&kind.as_str()) {
        let predicate = b.row_predicate()?;
        (format!("select * from {} as t where {predicate}", b.scoped), Some(predicate))
    } else if COMPARISONS.contains(&kind.as_str()) {
        (b.comparison_sql()?, None)
    } else {
        (b.group_sql()?, None)
    };
    shell.depends_on.extend(b.depends_on.take());
    shell.failing_sql = failing_sql;
    shell.row_predicate = row_predicate;
    Ok(Parsed::Builtin(shell))
}

/// Tests whose failing rows are the subject's rows matching one predicate.
const ROW_TESTS: &[&str] = &["not_null", "accepted_values", "accepted_range", "expression_is_true", "matches_regex"];

/// Tests that compare the subject with another relation.
const COMPARISONS: &[&str] = &["relationships", "recency", "equal_rowcount", "equal_sum"];

/// The assertion with everything but its SQL: name, severity, thresholds,
/// filter and parameters.
fn shell(d: &Declared<'_>, kind: &str, args: &Map<String, Json>) -> Result<Assertion, String> {
    let severity = match args.get("severity").and_then(Json::as_str).map(str::to_ascii_lowercase).as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => return Err(format!("severity must be `warn` or `error`, not `{other}`")),
    };
    let name = args.get("name").and_then(Json::as_str).map(str::to_string).unwrap_or_else(|| default_name(d, kind));
    Ok(Assertion {
        unique_id: format!("test.{}.{name}", d.project),
        name,
        kind: kind.to_string(),
        subject: d.subject.clone(),
        column: d.column.clone(),
        params: args
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        severity,
        warn_if: threshold(args, "warn_if")?,
        error_if: threshold(args, "error_if")?,
        filter: args.get("where").and_then(Json::as_str).map(str::to_string),
        failing_sql: String::new(),
        row_predicate: None,
        depends_on: BTreeSet::new(),
        defined_at: d.defined_at.clone(),
        monitor: None,
        fail_calc: args.get("fail_calc").and_then(Json::as_str).map(str::to_string),
    })
}

/// dbt's name of a test without `name:`: `<kind>_<subject>[_<column>]`,
/// `source_` first for a source's.
fn default_name(d: &Declared<'_>, kind: &str) -> String {
    let subject = d.subject.name().replace('.', "_");
    let prefix = if matches!(d.subject, Subject::Source(_)) { "source_" } else { "" };
    match &d.column {
        Some(c) => format!("{prefix}{kind}_{subject}_{c}"),
        None => format!("{prefix}{kind}_{subject}"),
    }
}

/// `warn_if` / `error_if`: `">0"` when not set.
fn threshold(args: &Map<String, Json>, key: &str) -> Result<Threshold, String> {
    let Some(v) = args.get(key) else {
        return Ok(Threshold::ANY);
    };
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    Threshold::parse(&text)
        .ok_or_else(|| format!("`{key}: {text}` is not a threshold like \">0\", \">=10\" or \">1%\""))
}

/// The subject's relation, narrowed by the test's `where:`.
fn scoped(d: &Declared<'_>, filter: &Option<String>) -> String {
    let subject = match &d.subject {
        Subject::Model(m) => relation(m),
        Subject::Source(key) => {
            let (s, t) = key.split_once('.').unwrap_or((key, ""));
            source_relation(s, t)
        }
    };
    match filter {
        Some(w) => format!("(select * from {subject} where {w})"),
        None => subject,
    }
}

/// A built-in test being turned into SQL.
struct Builtin<'a> {
    kind: &'a str,
    d: &'a Declared<'a>,
    params: &'a Map<String, Json>,
    /// The subject, narrowed by `where:`.
    scoped: String,
    /// A model the SQL reads beside the subject.
    depends_on: Option<String>,
}

impl Builtin<'_> {
    /// The quoted column the test is declared under.
    fn col(&self) -> Result<String, String> {
        self.d.column.as_deref().map(quote).ok_or_else(|| format!("test `{}` belongs under a column", self.kind))
    }

    fn param(&self, key: &str) -> Result<&Json, String> {
        self.params.get(key).ok_or_else(|| format!("test `{}` needs `{key}`", self.kind))
    }

    fn param_str(&self, key: &str) -> Result<String, String> {
        self.param(key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`{key}` of test `{}` must be text", self.kind))
    }

    /// The column under which the test is declared, else parameter `key`.
    fn column_or(&self, key: &str) -> Result<String, String> {
        match &self.d.column {
            Some(c) => Ok(self.params.get(key).and_then(Json::as_str).unwrap_or(c).to_string()),
            None => self.param_str(key),
        }
    }

    /// Another relation the test reads (`to:`, `compare_model:`), recorded
    /// as a dependency when it is a model.
    fn other(&mut self, key: &str, expected: &str) -> Result<String, String> {
        let (rel, model) = parse_relation(&self.param_str(key)?).ok_or(format!("`{key}` must be {expected}"))?;
        self.depends_on = model;
        Ok(rel)
    }

    /// The predicate a failing row of a row test matches.
    fn row_predicate(&self) -> Result<String, String> {
        Ok(match self.kind {
            "not_null" => format!("{} is null", self.col()?),
            "accepted_values" => {
                let c = self.col()?;
                let values = self.param("values")?.as_array().ok_or("`values` of accepted_values must be a list")?;
                let list: Vec<String> = values.iter().map(literal).collect();
                format!("{c} is not null and {c} not in ({})", list.join(", "))
            }
            "accepted_range" => self.range_predicate()?,
            "expression_is_true" => {
                let expr = self.param_str("expression")?;
                let expr = match &self.d.column {
                    Some(c) if !expr.contains(c.as_str()) => format!("{} {expr}", quote(c)),
                    _ => expr,
                };
                format!("not coalesce(({expr}), false)")
            }
            "matches_regex" => {
                let c = self.col()?;
                let re = literal(&Json::String(self.param_str("regex")?));
                format!("{c} is not null and not regexp_like({c}, {re})")
            }
            other => unreachable!("`{other}` is not a row test"),
        })
    }

    fn range_predicate(&self) -> Result<String, String> {
        let c = self.col()?;
        let inclusive = self.params.get("inclusive").and_then(Json::as_bool).unwrap_or(true);
        let (lo, hi) = if inclusive { (">=", "<=") } else { (">", "<") };
        let mut conds = Vec::new();
        if let Some(min) = self.params.get("min_value").or(self.params.get("min")) {
            conds.push(format!("{c} {lo} {}", literal(min)));
        }
        if let Some(max) = self.params.get("max_value").or(self.params.get("max")) {
            conds.push(format!("{c} {hi} {}", literal(max)));
        }
        if conds.is_empty() {
            return Err("accepted_range needs `min_value` and/or `max_value`".into());
        }
        Ok(format!("{c} is not null and not ({})", conds.join(" and ")))
    }

    /// Tests over groups or counts of the subject's rows.
    fn group_sql(&self) -> Result<String, String> {
        let scoped = &self.scoped;
        Ok(match self.kind {
            "unique" => {
                let c = self.col()?;
                format!("select {c} as unique_field, count(*) as n_records from {scoped} as t where {c} is not null group by {c} having count(*) > 1")
            }
            "unique_combination_of_columns" => {
                let cols = self
                    .param("combination_of_columns")?
                    .as_array()
                    .ok_or("`combination_of_columns` must be a list")?;
                let cols: Vec<String> = cols.iter().filter_map(Json::as_str).map(quote).collect();
                if cols.is_empty() {
                    return Err("`combination_of_columns` must name at least one column".into());
                }
                let list = cols.join(", ");
                format!("select {list}, count(*) as n_records from {scoped} as t group by {list} having count(*) > 1")
            }
            "not_empty" => format!("select count(*) as row_count from {scoped} as t having count(*) = 0"),
            "volume" => self.volume_sql()?,
            "row_count" => {
                let bound = |a: &str, b: &str| self.params.get(a).or(self.params.get(b)).and_then(Json::as_u64);
                let mut conds = Vec::new();
                if let Some(min) = bound("min", "min_value") {
                    conds.push(format!("count(*) < {min}"));
                }
                if let Some(max) = bound("max", "max_value") {
                    conds.push(format!("count(*) > {max}"));
                }
                if conds.is_empty() {
                    return Err("row_count needs `min` and/or `max` (whole numbers)".into());
                }
                format!("select count(*) as row_count from {scoped} as t having {}", conds.join(" or "))
            }
            other => unreachable!("`{other}` is not a group test"),
        })
    }

    fn volume_sql(&self) -> Result<String, String> {
        let drop = self.params.get("max_drop_pct").and_then(Json::as_f64).unwrap_or(30.0);
        if !(0.0..100.0).contains(&drop) {
            return Err("volume's `max_drop_pct` is a percentage, at least 0 and below 100".into());
        }
        let mut conds = vec![format!("count(*) < {VOLUME_BASELINE} * {}", 1.0 - drop / 100.0)];
        if let Some(growth) = self.params.get("max_growth_pct").and_then(Json::as_f64) {
            conds.push(format!("({VOLUME_BASELINE} > 0 and count(*) > {VOLUME_BASELINE} * {})", 1.0 + growth / 100.0));
        }
        Ok(format!(
            "select count(*) as row_count, {VOLUME_BASELINE} as recent_rows from {} as t having {}",
            self.scoped,
            conds.join(" or ")
        ))
    }

    /// Tests that compare the subject with another relation or the clock.
    fn comparison_sql(&mut self) -> Result<String, String> {
        let scoped = self.scoped.clone();
        Ok(match self.kind {
            "relationships" => {
                let c = self.col()?;
                let to = self.other("to", "ref('model') or source('src', 'table')")?;
                let field = quote(&self.param_str("field")?);
                format!(
                    "select child.* from {scoped} as child left join {to} as parent on child.{c} = parent.{field} \
                     where child.{c} is not null and parent.{field} is null"
                )
            }
            "recency" => self.recency_sql()?,
            "equal_rowcount" => {
                let other = self.other("compare_model", "ref('model')")?;
                format!(
                    "select a.n as row_count, b.n as compare_row_count from (select count(*) as n from {scoped} as t) as a \
                     cross join (select count(*) as n from {other}) as b where a.n <> b.n"
                )
            }
            "equal_sum" => {
                let column = quote(&match &self.d.column {
                    Some(c) => c.clone(),
                    None => self.param_str("column")?,
                });
                let other = self.other("compare_model", "ref('model')")?;
                let other_col = self
                    .params
                    .get("compare_column")
                    .and_then(Json::as_str)
                    .map(quote)
                    .unwrap_or_else(|| column.clone());
                let tolerance = self.params.get("tolerance").and_then(Json::as_f64).unwrap_or(0.0);
                format!(
                    "select a.s as total, b.s as compare_total from \
                     (select coalesce(sum({column}), 0) as s from {scoped} as t) as a cross join \
                     (select coalesce(sum({other_col}), 0) as s from {other}) as b \
                     where abs(cast(a.s as double) - cast(b.s as double)) > {tolerance}"
                )
            }
            other => unreachable!("`{other}` is not a comparison test"),
        })
    }

    fn recency_sql(&self) -> Result<String, String> {
        let field = quote(&self.column_or("field")?);
        let datepart = self.params.get("datepart").and_then(Json::as_str).unwrap_or("day");
        let interval =
            self.params.get("interval").and_then(Json::as_i64).ok_or("recency needs a whole-number `interval`")?;
        let as_of = match &self.d.as_of {
            Some(day) => format!("cast('{day}' as timestamp)"),
            None => "now()".to_string(),
        };
        Ok(format!(
            "select max(cast({field} as timestamp)) as most_recent from {} as t \
             having max(cast({field} as timestamp)) is null \
             or max(cast({field} as timestamp)) < {as_of} - interval '{interval} {datepart}'",
            self.scoped
        ))
    }
}

/// Parses `ref('m')` or `source('s', 't')` into (relation SQL, model name).
pub fn parse_relation(text: &str) -> Option<(String, Option<String>)> {
    let t = text.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
    let args = |inner: &str| -> Vec<String> {
        inner.split(',').map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"').to_string()).collect()
    };
    if let Some(inner) = t.strip_prefix("ref(").and_then(|r| r.strip_suffix(')')) {
        let a = args(inner);
        let m = a.last()?.clone();
        return Some((relation(&m), Some(m)));
    }
    if let Some(inner) = t.strip_prefix("source(").and_then(|r| r.strip_suffix(')')) {
        let a = args(inner);
        if a.len() == 2 {
            return Some((source_relation(&a[0], &a[1]), None));
        }
    }
    None
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(v: &Json) -> String {
    match v {
        Json::String(s) => format!("'{}'", s.replace('\'', "''")),
        Json::Bool(b) => b.to_string(),
        Json::Null => "null".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_refs() {
        assert_eq!(
            parse_relation("ref('dim_customers')"),
            Some(("\"dim_customers\"".into(), Some("dim_customers".into())))
        );
        assert_eq!(parse_relation("source('shop', 'orders')"), Some(("\"shop\".\"orders\"".into(), None)));
        assert_eq!(parse_relation("dim_customers"), None);
    }
}
