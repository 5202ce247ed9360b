//! The parts of dbt's Jinja context that dbt projects use beyond `ref`,
//! `source`, `config` and `var`: `target`, `this` as a relation, `log`,
//! `return`, `exceptions`, `adapter.dispatch`, `execute`, the `as_*`
//! filters, and clear errors for what needs a live database.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use crate::project::Project;

/// Prefix given to macro definitions so that every call, even from the same
/// file, goes through the wrapper that honours `return()`.
pub const MACRO_PREFIX: &str = "__wh_macro__";

/// The dbt version templates see (`dbt_version`).
const DBT_VERSION: &str = "1.9.0";

/// A relation as dbt's `this` and `ref()` give it: printed as the quoted
/// name, with `.name`, `.identifier`, `.schema` and `.database`.
#[derive(Debug)]
pub struct Relation {
    pub name: String,
    pub schema: String,
}

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "name" | "identifier" | "table" => Some(Value::from(self.name.clone())),
            "schema" => Some(Value::from(self.schema.clone())),
            "database" => Some(Value::from("main")),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", super::relation(&self.name))
    }
}

/// What `return(value)` carries up to the macro that called it.
#[derive(Debug)]
struct Returned(Value);

impl fmt::Display for Returned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "return() called outside a macro")
    }
}

impl std::error::Error for Returned {}

/// Turns a macro call's outcome into its value: what it passed to
/// `return()`, else what it rendered.
pub fn returned(outcome: Result<Value, Error>) -> Result<Value, Error> {
    match outcome {
        Ok(v) => Ok(v),
        Err(err) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
            while let Some(e) = source {
                if let Some(Returned(v)) = e.downcast_ref::<Returned>() {
                    return Ok(v.clone());
                }
                source = e.source();
            }
            Err(err)
        }
    }
}

/// Renders the body of a `{% call %}` block in the caller's own state: a
/// macro runs in its file's state, where the caller's template cannot be
/// run. `caller()` then gives the rendered body (arguments to `caller` are
/// not supported).
pub fn rendered_caller(state: &State, args: &[Value]) -> Result<Vec<Value>, Error> {
    let Some(kwargs) = args.last().and_then(|v| Kwargs::try_from(v.clone()).ok()) else {
        return Ok(args.to_vec());
    };
    let Ok(caller) = kwargs.get::<Value>("caller") else {
        return Ok(args.to_vec());
    };
    let body = caller.call(state, &[])?;
    let mut out = args[..args.len() - 1].to_vec();
    let rest: Kwargs = kwargs
        .args()
        .map(|k| {
            let v = if k == "caller" {
                let body = body.clone();
                Value::from_function(move |_: Rest<Value>| body.clone())
            } else {
                kwargs.get::<Value>(k).unwrap_or_default()
            };
            (k.to_string(), v)
        })
        .collect();
    out.push(Value::from(rest));
    Ok(out)
}

/// Renames `{% macro name(` to `{% macro __wh_macro__name(` in a macro file.
pub fn prefix_macros(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(i) = rest.find("{%") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let trimmed = rest.trim_start_matches(['-', '+']).trim_start();
        if let Some(after) = trimmed.strip_prefix("macro") {
            if after.starts_with(char::is_whitespace) {
                let name_start = after.trim_start();
                let lead = rest.len() - name_start.len();
                out.push_str(&rest[..lead]);
                out.push_str(MACRO_PREFIX);
                rest = &rest[lead..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `adapter`: `dispatch` finds `duckdb__name`, else `default__name`.
#[derive(Debug)]
struct Adapter;

impl Object for Adapter {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str()? == "type").then(|| Value::from("duckdb"))
    }

    fn call_method(self: &Arc<Self>, state: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "dispatch" => {
                let name = args
                    .first()
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "adapter.dispatch() needs a macro name"))?;
                for prefix in ["duckdb__", "default__"] {
                    if let Some(m) = state.lookup(&format!("{prefix}{name}")).filter(|v| !v.is_undefined()) {
                        return Ok(m);
                    }
                }
                Err(Error::new(
                    ErrorKind::UnknownFunction,
                    format!("adapter.dispatch('{name}'): no macro `duckdb__{name}` or `default__{name}`"),
                ))
            }
            "quote" => Ok(Value::from(super::relation(args.first().and_then(|v| v.as_str()).unwrap_or_default()))),
            "type" => Ok(Value::from("duckdb")),
            other => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "adapter.{other}() needs a live database, which wh does not query while compiling; \
                     it is not supported"
                ),
            )),
        }
    }
}

/// dbt's cross-database macros (`dbt.datediff(...)`, `dbt.type_string()`,
/// ...), rendered as SQL that DataFusion with wh's DuckDB functions and
/// DuckDB itself both run the same way.
#[derive(Debug)]
struct CrossDatabase;

/// The names `dbt.` offers, for the error about the others.
const CROSS_DATABASE: &[&str] = &[
    "any_value",
    "bool_or",
    "cast",
    "cast_bool_to_text",
    "concat",
    "current_timestamp",
    "date_trunc",
    "dateadd",
    "datediff",
    "escape_single_quotes",
    "except",
    "hash",
    "intersect",
    "last_day",
    "length",
    "listagg",
    "position",
    "replace",
    "right",
    "safe_cast",
    "split_part",
    "string_literal",
    "type_bigint",
    "type_boolean",
    "type_float",
    "type_int",
    "type_numeric",
    "type_string",
    "type_timestamp",
];

impl Object for CrossDatabase {
    fn call_method(self: &Arc<Self>, _: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs) = match args.last().and_then(|v| Kwargs::try_from(v.clone()).ok()) {
            Some(k) if args.last().is_some_and(|v| !v.is_undefined()) => (&args[..args.len() - 1], Some(k)),
            _ => (args, None),
        };
        let arg = |i: usize, name: &str| -> Option<Value> {
            positional
                .get(i)
                .cloned()
                .or_else(|| kwargs.as_ref().and_then(|k| k.get::<Option<Value>>(name).ok().flatten()))
        };
        let need = |i: usize, name: &str| -> Result<String, Error> {
            arg(i, name).map(|v| v.to_string()).ok_or_else(|| {
                Error::new(ErrorKind::MissingArgument, format!("dbt.{method}() needs its `{name}` argument"))
            })
        };
        let sql = match method {
            "datediff" => {
                format!(
                    "date_diff('{}', {}, {})",
                    need(2, "datepart")?,
                    need(0, "first_date")?,
                    need(1, "second_date")?
                )
            }
            "dateadd" => {
                let (part, n, from) = (need(0, "datepart")?, need(1, "interval")?, need(2, "from_date_or_timestamp")?);
                if n.trim().trim_start_matches('-').chars().all(|c| c.is_ascii_digit()) && !n.trim().is_empty() {
                    format!("({from} + interval '{} {part}')", n.trim())
                } else {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "dbt.dateadd() with a computed interval (`{n}`) is not supported: DataFusion has no                              interval of a column; give a number"
                        ),
                    ));
                }
            }
            "date_trunc" => format!("date_trunc('{}', {})", need(0, "datepart")?, need(1, "date")?),
            "last_day" => {
                let (date, part) = (need(0, "date")?, need(1, "datepart")?);
                format!("cast(date_trunc('{part}', {date}) + interval '1 {part}' - interval '1 day' as date)")
            }
            "safe_cast" => format!("try_cast({} as {})", need(0, "field")?, need(1, "type")?),
            "cast" => format!("cast({} as {})", need(0, "field")?, need(1, "type")?),
            "cast_bool_to_text" => format!("cast({} as varchar)", need(0, "field")?),
            "concat" => {
                let fields = arg(0, "fields").ok_or_else(|| {
                    Error::new(ErrorKind::MissingArgument, "dbt.concat() needs its `fields` argument")
                })?;
                let parts: Vec<String> = fields.try_iter()?.map(|v| v.to_string()).collect();
                parts.join(" || ")
            }
            "hash" => format!("md5(cast({} as varchar))", need(0, "field")?),
            "split_part" => {
                format!(
                    "split_part({}, {}, {})",
                    need(0, "string_text")?,
                    need(1, "delimiter_text")?,
                    need(2, "part_number")?
                )
            }
            "listagg" => {
                let measure = need(0, "measure")?;
                let delimiter = arg(1, "delimiter_text").map(|v| v.to_string()).unwrap_or_else(|| "','".into());
                let order = arg(2, "order_by_clause").filter(|v| !v.is_none()).map(|v| format!(" {v}"));
                if arg(3, "limit_num").is_some_and(|v| !v.is_none()) {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "dbt.listagg() with limit_num is not supported",
                    ));
                }
                format!("string_agg({measure}, {delimiter}{})", order.unwrap_or_default())
            }
            "any_value" => format!("any_value({})", need(0, "expression")?),
            "bool_or" => format!("bool_or({})", need(0, "expression")?),
            "position" => format!("position({} in {})", need(0, "substring_text")?, need(1, "string_text")?),
            "length" => format!("length({})", need(0, "expression")?),
            "replace" => {
                format!("replace({}, {}, {})", need(0, "field")?, need(1, "old_chars")?, need(2, "new_chars")?)
            }
            "right" => format!("right({}, {})", need(0, "string_text")?, need(1, "length_expression")?),
            "escape_single_quotes" => need(0, "expression")?.replace('\'', "''"),
            "string_literal" => format!("'{}'", need(0, "value")?.replace('\'', "''")),
            "current_timestamp" => "now()".into(),
            "except" => "except".into(),
            "intersect" => "intersect".into(),
            "type_string" => "varchar".into(),
            "type_timestamp" => "timestamp".into(),
            "type_int" => "integer".into(),
            "type_bigint" => "bigint".into(),
            "type_float" => "float".into(),
            "type_numeric" => "numeric(28, 6)".into(),
            "type_boolean" => "boolean".into(),
            other => {
                // Not UnknownMethod: that would hand the call to pycompat,
                // whose error does not name the macro.
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "dbt.{other}() is not one of the cross-database macros wh renders ({})",
                        CROSS_DATABASE.join(", ")
                    ),
                ));
            }
        };
        Ok(Value::from_safe_string(sql))
    }
}

/// `modules`: Python's modules are not there; the error says so.
#[derive(Debug)]
struct Modules;

impl Object for Modules {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Module(key.as_str()?.to_string())))
    }
}

#[derive(Debug)]
struct Module(String);

impl Object for Module {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Module(format!("{}.{}", self.0, key.as_str()?))))
    }

    fn call_method(self: &Arc<Self>, _: &State<'_, '_>, method: &str, _: &[Value]) -> Result<Value, Error> {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "modules.{}.{method}() is not supported: wh's Jinja has no Python modules \
                 (use run_started_at for the time of the run, or SQL's current_date)",
                self.0
            ),
        ))
    }
}

/// `exceptions.raise_compiler_error(msg)` and `exceptions.warn(msg)`.
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(self: &Arc<Self>, _: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let msg = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "warn" => {
                eprintln!("warning: {msg}");
                Ok(Value::from(""))
            }
            _ => Err(Error::new(ErrorKind::InvalidOperation, format!("raised by the project: {msg}"))),
        }
    }
}

/// How `run_started_at` prints (UTC, microseconds); the compiled SQL's
/// definition puts its name back in place of this text.
pub fn started_text(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// `run_started_at`: printed as before, with `strftime` and `isoformat`.
#[derive(Debug)]
struct StartedAt(chrono::DateTime<chrono::Utc>);

impl Object for StartedAt {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        use chrono::Datelike;
        match key.as_str()? {
            "year" => Some(Value::from(self.0.year())),
            "month" => Some(Value::from(self.0.month())),
            "day" => Some(Value::from(self.0.day())),
            _ => None,
        }
    }

    fn call_method(self: &Arc<Self>, _: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let fmt = args.first().and_then(|v| v.as_str()).unwrap_or("%Y-%m-%d %H:%M:%S");
                Ok(Value::from(self.0.format(fmt).to_string()))
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())),
            "date" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            _ => Err(Error::new(ErrorKind::InvalidOperation, format!("run_started_at has no method `{method}`"))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", started_text(&self.0))
    }
}

fn needs_database(name: &'static str) -> impl Fn(Rest<Value>) -> Result<Value, Error> {
    move |_| {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{name}() runs a query while compiling, which needs a live database; \
                 wh compiles without one, so it is not supported"
            ),
        ))
    }
}

/// A hint for an error where minijinja differs from Jinja2 in a way dbt
/// projects meet.
pub fn jinja2_hint(message: &str) -> Option<String> {
    let mutates = ["append", "extend", "update", "pop", "insert", "remove", "setdefault"]
        .iter()
        .any(|m| message.ends_with(&format!("has no method named {m}")));
    if mutates {
        return Some(
            "lists and dicts cannot be changed in place here (minijinja's values are immutable): build a new \
             one, e.g. {% set xs = xs + [x] %} or {% set d = dict(d, key=value) %}"
                .into(),
        );
    }
    if message.contains("% operator on unsupported types string") {
        return Some("Python's '%s' % x formatting is not supported: write '%s' | format(x)".into());
    }
    if message == "too many arguments" {
        return Some(
            "a call passes more arguments than the macro declares: Jinja2's `varargs` and `kwargs` inside \
             macros are not supported; declare each argument"
                .into(),
        );
    }
    if message == "unknown statement materialization" {
        return Some("custom materializations are not supported; use table, view, incremental, ephemeral".into());
    }
    None
}

/// Registers dbt's context on an environment.
pub fn register(env: &mut Environment<'_>, project: &Project) {
    let target = &project.target;
    env.add_global(
        "target",
        minijinja::context! {
            name => target.name.clone(),
            schema => target.schema.clone(),
            database => "main",
            type => "duckdb",
            threads => target.threads,
            profile_name => project.name.clone(),
            warehouse => target.warehouse.clone(),
        },
    );
    env.add_global("run_started_at", Value::from_object(StartedAt(project.run_started_at)));
    env.add_global("invocation_id", project.invocation_id.clone());
    env.add_global("execute", true);
    env.add_global("dbt_version", DBT_VERSION);
    env.add_global("project_name", project.name.clone());
    env.add_global("adapter", Value::from_object(Adapter));
    env.add_global("exceptions", Value::from_object(Exceptions));
    env.add_global("dbt", Value::from_object(CrossDatabase));
    env.add_global("modules", Value::from_object(Modules));
    env.add_global(
        "flags",
        minijinja::context! { FULL_REFRESH => project.flags.full_refresh, WHICH => project.flags.which.clone() },
    );

    env.add_function("return", |value: Option<Value>| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, "return() called outside a macro")
            .with_source(Returned(value.unwrap_or(Value::from(())))))
    });
    env.add_function("log", |msg: Value, info: Option<bool>, kwargs: Kwargs| -> Result<String, Error> {
        let info = info.or(kwargs.get::<Option<bool>>("info")?).unwrap_or(false);
        if info {
            eprintln!("{msg}");
        }
        Ok(String::new())
    });
    env.add_function("tojson", |v: Value| {
        serde_json::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    env.add_function("fromjson", |s: String| {
        serde_json::from_str::<serde_json::Value>(&s)
            .map(Value::from_serialize)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("fromjson: {e}")))
    });
    for name in ["run_query", "statement", "load_result"] {
        env.add_function(name, needs_database(name));
    }

    env.add_filter("as_bool", |v: Value| -> Value {
        match v.as_str() {
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Value::from(true),
                "false" => Value::from(false),
                _ => v,
            },
            None => v,
        }
    });
    env.add_filter("as_number", |v: Value| -> Value {
        match v.as_str() {
            Some(s) => {
                if let Ok(i) = s.trim().parse::<i64>() {
                    Value::from(i)
                } else if let Ok(f) = s.trim().parse::<f64>() {
                    Value::from(f)
                } else {
                    v
                }
            }
            None => v,
        }
    });
    env.add_filter("as_text", |v: Value| v.to_string());
    env.add_filter("as_native", |v: Value| v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_definitions_are_prefixed_and_nothing_else() {
        let text = "{% macro a(x) %}macro {{ x }}{% endmacro %}\n{%- macro  b() -%}{%- endmacro %}{{ macro_c() }}";
        let out = prefix_macros(text);
        assert_eq!(
            out,
            "{% macro __wh_macro__a(x) %}macro {{ x }}{% endmacro %}\n\
             {%- macro  __wh_macro__b() -%}{%- endmacro %}{{ macro_c() }}"
        );
    }

    #[test]
    fn jinja2_differences_get_hints() {
        assert!(jinja2_hint("sequence has no method named append").unwrap().contains("xs + [x]"));
        assert!(jinja2_hint("map has no method named update").unwrap().contains("dict(d"));
        assert!(jinja2_hint("tried to use % operator on unsupported types string and sequence")
            .unwrap()
            .contains("format"));
        assert_eq!(jinja2_hint("something else"), None);
    }

    #[test]
    fn return_value_reaches_the_caller() {
        let mut env = Environment::new();
        env.add_function("return", |value: Value| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, "return").with_source(Returned(value)))
        });
        let tmpl = env.template_from_str("{% macro m() %}ignored{{ return([1, 2]) }}{% endmacro %}").unwrap();
        let captured = tmpl.render_captured(()).unwrap();
        let state = captured.state();
        let m = state.lookup("m").unwrap();
        let got = returned(m.call(state, &[])).unwrap();
        assert_eq!(got.to_string(), "[1, 2]");
    }
}
