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
];

/// Stands for a model's recent row count in a `volume` check's SQL until
/// the run fills it in from the warehouse's records (see state.rs).
pub const VOLUME_BASELINE: &str = "__wh_volume_baseline__";

/// Keys every test accepts, beside its own parameters.
const COMMON: &[&str] = &["severity", "warn_if", "error_if", "where", "name", "config", "description", "meta", "tags"];

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
    Custom { kind: String, args: Map<String, Json>, shell: Assertion },
}

/// Returns the kind and arguments of a test entry.
pub fn kind_and_args(entry: &Json) -> Result<(String, Map<String, Json>), String> {
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
pub fn parse(d: &Declared<'_>, is_custom: &dyn Fn(&str) -> bool) -> Result<Parsed, String> {
    let (kind, mut args) = kind_and_args(d.entry)?;
    // dbt accepts common keys at the top level or under `config:`.
    if let Some(Json::Object(cfg)) = args.remove("config") {
        for (k, v) in cfg {
            args.insert(k, v);
        }
    }
    let severity = match args.get("severity").and_then(Json::as_str).map(str::to_ascii_lowercase).as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => return Err(format!("severity must be `warn` or `error`, not `{other}`")),
    };
    let threshold = |key: &str| -> Result<Threshold, String> {
        match args.get(key) {
            None => Ok(Threshold::ANY),
            Some(v) => {
                let text = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Threshold::parse(&text)
                    .ok_or_else(|| format!("`{key}: {text}` is not a threshold like \">0\", \">=10\" or \">1%\""))
            }
        }
    };
    let warn_if = threshold("warn_if")?;
    let error_if = threshold("error_if")?;
    let filter = args.get("where").and_then(Json::as_str).map(str::to_string);
    let subject_rel = match &d.subject {
        Subject::Model(m) => relation(m),
        Subject::Source(key) => {
            let (s, t) = key.split_once('.').unwrap_or((key, ""));
            source_relation(s, t)
        }
    };
    let scoped = match &filter {
        Some(w) => format!("(select * from {subject_rel} where {w})"),
        None => subject_rel.clone(),
    };
    let subject_slug = d.subject.name().replace('.', "_");
    let default_name = match (&d.subject, &d.column) {
        (Subject::Source(_), Some(c)) => format!("source_{kind}_{subject_slug}_{c}"),
        (Subject::Source(_), None) => format!("source_{kind}_{subject_slug}"),
        (_, Some(c)) => format!("{kind}_{subject_slug}_{c}"),
        (_, None) => format!("{kind}_{subject_slug}"),
    };
    let name = args.get("name").and_then(Json::as_str).map(str::to_string).unwrap_or(default_name);
    let params: Map<String, Json> =
        args.iter().filter(|(k, _)| !COMMON.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();

    let mut shell = Assertion {
        unique_id: format!("test.{}.{name}", d.project),
        name,
        kind: kind.clone(),
        subject: d.subject.clone(),
        column: d.column.clone(),
        params: params.clone(),
        severity,
        warn_if,
        error_if,
        filter: filter.clone(),
        failing_sql: String::new(),
        row_predicate: None,
        depends_on: BTreeSet::new(),
        defined_at: d.defined_at.clone(),
    };
    if !BUILTIN.contains(&kind.as_str()) {
        if is_custom(&kind) {
            return Ok(Parsed::Custom { kind, args: params, shell });
        }
        let hint = crate::diagnostic::did_you_mean(&kind, BUILTIN.iter().copied())
            .unwrap_or_else(|| "define it with {% test name(model, column_name) %} in macros/".into());
        return Err(format!("unknown test `{kind}`; {hint}"));
    }

    let col = || -> Result<String, String> {
        d.column.clone().map(|c| quote(&c)).ok_or_else(|| format!("test `{kind}` belongs under a column"))
    };
    let param =
        |key: &str| -> Result<&Json, String> { params.get(key).ok_or_else(|| format!("test `{kind}` needs `{key}`")) };
    let param_str = |key: &str| -> Result<String, String> {
        param(key)?.as_str().map(str::to_string).ok_or_else(|| format!("`{key}` of test `{kind}` must be text"))
    };
    let mut row_predicate: Option<String> = None;
    let failing_sql = match kind.as_str() {
        "not_null" => {
            let c = col()?;
            row_predicate = Some(format!("{c} is null"));
            format!("select * from {scoped} as t where {c} is null")
        }
        "unique" => {
            let c = col()?;
            format!("select {c} as unique_field, count(*) as n_records from {scoped} as t where {c} is not null group by {c} having count(*) > 1")
        }
        "accepted_values" => {
            let c = col()?;
            let values = param("values")?.as_array().ok_or("`values` of accepted_values must be a list")?;
            let list: Vec<String> = values.iter().map(literal).collect();
            row_predicate = Some(format!("{c} is not null and {c} not in ({})", list.join(", ")));
            format!("select * from {scoped} as t where {}", row_predicate.clone().unwrap_or_default())
        }
        "relationships" => {
            let c = col()?;
            let (to_rel, to_model) =
                parse_relation(&param_str("to")?).ok_or("`to` must be ref('model') or source('src', 'table')")?;
            let field = quote(&param_str("field")?);
            if let Some(m) = to_model {
                shell.depends_on.insert(m);
            }
            format!(
                "select child.* from {scoped} as child left join {to_rel} as parent on child.{c} = parent.{field} \
                 where child.{c} is not null and parent.{field} is null"
            )
        }
        "unique_combination_of_columns" => {
            let cols = param("combination_of_columns")?.as_array().ok_or("`combination_of_columns` must be a list")?;
            let cols: Vec<String> = cols.iter().filter_map(Json::as_str).map(quote).collect();
            if cols.is_empty() {
                return Err("`combination_of_columns` must name at least one column".into());
            }
            let list = cols.join(", ");
            format!("select {list}, count(*) as n_records from {scoped} as t group by {list} having count(*) > 1")
        }
        "accepted_range" => {
            let c = col()?;
            let inclusive = params.get("inclusive").and_then(Json::as_bool).unwrap_or(true);
            let (lo, hi) = if inclusive { (">=", "<=") } else { (">", "<") };
            let mut conds = Vec::new();
            if let Some(min) = params.get("min_value").or(params.get("min")) {
                conds.push(format!("{c} {lo} {}", literal(min)));
            }
            if let Some(max) = params.get("max_value").or(params.get("max")) {
                conds.push(format!("{c} {hi} {}", literal(max)));
            }
            if conds.is_empty() {
                return Err("accepted_range needs `min_value` and/or `max_value`".into());
            }
            row_predicate = Some(format!("{c} is not null and not ({})", conds.join(" and ")));
            format!("select * from {scoped} as t where {}", row_predicate.clone().unwrap_or_default())
        }
        "expression_is_true" => {
            let expr = param_str("expression")?;
            let expr = match &d.column {
                Some(c) if !expr.contains(c.as_str()) => format!("{} {expr}", quote(c)),
                _ => expr,
            };
            row_predicate = Some(format!("not coalesce(({expr}), false)"));
            format!("select * from {scoped} as t where not coalesce(({expr}), false)")
        }
        "matches_regex" => {
            let c = col()?;
            let re = literal(&Json::String(param_str("regex")?));
            row_predicate = Some(format!("{c} is not null and not regexp_like({c}, {re})"));
            format!("select * from {scoped} as t where {c} is not null and not regexp_like({c}, {re})")
        }
        "not_empty" => format!("select count(*) as row_count from {scoped} as t having count(*) = 0"),
        "volume" => {
            let drop = params.get("max_drop_pct").and_then(Json::as_f64).unwrap_or(30.0);
            if !(0.0..100.0).contains(&drop) {
                return Err("volume's `max_drop_pct` is a percentage, at least 0 and below 100".into());
            }
            let mut conds = vec![format!("count(*) < {VOLUME_BASELINE} * {}", 1.0 - drop / 100.0)];
            if let Some(growth) = params.get("max_growth_pct").and_then(Json::as_f64) {
                conds.push(format!(
                    "({VOLUME_BASELINE} > 0 and count(*) > {VOLUME_BASELINE} * {})",
                    1.0 + growth / 100.0
                ));
            }
            format!(
                "select count(*) as row_count, {VOLUME_BASELINE} as recent_rows from {scoped} as t having {}",
                conds.join(" or ")
            )
        }
        "row_count" => {
            let mut conds = Vec::new();
            if let Some(min) = params.get("min").or(params.get("min_value")).and_then(Json::as_u64) {
                conds.push(format!("count(*) < {min}"));
            }
            if let Some(max) = params.get("max").or(params.get("max_value")).and_then(Json::as_u64) {
                conds.push(format!("count(*) > {max}"));
            }
            if conds.is_empty() {
                return Err("row_count needs `min` and/or `max` (whole numbers)".into());
            }
            format!("select count(*) as row_count from {scoped} as t having {}", conds.join(" or "))
        }
        "recency" => {
            let field = quote(&match &d.column {
                Some(c) => params.get("field").and_then(Json::as_str).unwrap_or(c).to_string(),
                None => param_str("field")?,
            });
            let datepart = params.get("datepart").and_then(Json::as_str).unwrap_or("day");
            let interval =
                params.get("interval").and_then(Json::as_i64).ok_or("recency needs a whole-number `interval`")?;
            let as_of = match &d.as_of {
                Some(day) => format!("cast('{day}' as timestamp)"),
                None => "now()".to_string(),
            };
            format!(
                "select max(cast({field} as timestamp)) as most_recent from {scoped} as t \
                 having max(cast({field} as timestamp)) is null \
                 or max(cast({field} as timestamp)) < {as_of} - interval '{interval} {datepart}'"
            )
        }
        "equal_rowcount" => {
            let (other, model) =
                parse_relation(&param_str("compare_model")?).ok_or("`compare_model` must be ref('model')")?;
            if let Some(m) = model {
                shell.depends_on.insert(m);
            }
            format!(
                "select a.n as row_count, b.n as compare_row_count from (select count(*) as n from {scoped} as t) as a \
                 cross join (select count(*) as n from {other}) as b where a.n <> b.n"
            )
        }
        "equal_sum" => {
            let column = quote(&match &d.column {
                Some(c) => c.clone(),
                None => param_str("column")?,
            });
            let (other, model) =
                parse_relation(&param_str("compare_model")?).ok_or("`compare_model` must be ref('model')")?;
            if let Some(m) = model {
                shell.depends_on.insert(m);
            }
            let other_col =
                params.get("compare_column").and_then(Json::as_str).map(quote).unwrap_or_else(|| column.clone());
            let tolerance = params.get("tolerance").and_then(Json::as_f64).unwrap_or(0.0);
            format!(
                "select a.s as total, b.s as compare_total from \
                 (select coalesce(sum({column}), 0) as s from {scoped} as t) as a cross join \
                 (select coalesce(sum({other_col}), 0) as s from {other}) as b \
                 where abs(cast(a.s as double) - cast(b.s as double)) > {tolerance}"
            )
        }
        _ => unreachable!("every built-in kind is handled"),
    };
    shell.failing_sql = failing_sql;
    shell.row_predicate = row_predicate;
    Ok(Parsed::Builtin(shell))
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
