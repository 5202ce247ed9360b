//! DuckDB's SQL on DataFusion, for dbt projects written for DuckDB: its
//! parser dialect, its function names where DataFusion has the same function
//! under another name, and its arithmetic where DataFusion would quietly
//! compute something else (`/` on integers).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast as cast_array;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::Dialect;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    binary_expr, cast, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ExprSchemable, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{Expr, SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// Which SQL a session reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqlDialect {
    /// DataFusion's own (wh projects).
    #[default]
    DataFusion,
    /// DuckDB's (dbt projects).
    DuckDb,
}

/// Sets DuckDB's parser dialect on a session config.
///
/// Left at DataFusion's generic dialect, which reads DuckDB's `::` casts,
/// `//`, `interval 1 hour` and `filter (where ...)`: sqlparser's DuckDB
/// dialect reads `f(a = b)` as a named argument, which broke
/// `bool_or(kind = 'refund')`.
///
/// NULLs sort last in both directions, as in DuckDB (DataFusion, like
/// Postgres, puts them first in descending order: `row_number() over
/// (order by x desc)` would quietly number differently).
pub fn configure(config: &mut SessionConfig) {
    config.options_mut().sql_parser.dialect = Dialect::Generic;
    config.options_mut().sql_parser.default_null_ordering = "nulls_last".to_string();
}

/// Registers DuckDB's function names and arithmetic on a session.
pub fn register(ctx: &SessionContext) {
    let (scalars, aggregates) = functions(&ctx.copied_config());
    for udf in scalars {
        ctx.register_udf(udf);
    }
    for udaf in aggregates {
        ctx.register_udaf(udaf);
    }
    let state = ctx.state_ref();
    let mut state = state.write();
    let _ = datafusion::execution::FunctionRegistry::register_expr_planner(&mut *state, Arc::new(DuckDbArithmetic));
}

/// DuckDB's functions: its names for DataFusion's functions
/// (`strftime(ts, fmt)` is `to_char(ts, fmt)`, chrono's % formats being
/// strftime's; `strptime(text, fmt)` is `to_timestamp(text, fmt)`), its
/// date functions and its aggregates. wh's cluster executors register
/// them too, so that what a dbt project plans locally runs there.
pub fn functions(config: &SessionConfig) -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    use datafusion::functions::datetime;
    let mut scalars = vec![
        datetime::to_char().as_ref().clone().with_aliases(["strftime"]),
        datetime::to_timestamp(config.options()).as_ref().clone().with_aliases(["strptime"]),
        datafusion::functions::unicode::character_length().as_ref().clone().with_aliases(["len"]),
        datafusion::functions::regex::regexp_like().as_ref().clone().with_aliases(["regexp_matches"]),
    ];
    scalars.extend(date_udfs());
    (scalars, aggregate_udfs())
}

/// DuckDB's division: `/` on numbers gives a DOUBLE (DuckDB 0.8 and later),
/// where DataFusion truncates integers and keeps decimals; `//` divides
/// integers (truncating toward zero) and, as DuckDB does, divides others
/// as DOUBLE without flooring.
#[derive(Debug)]
struct DuckDbArithmetic;

impl ExprPlanner for DuckDbArithmetic {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        let integers = |e: &Expr| e.get_type(schema).map(|t| t.is_integer()).unwrap_or(false);
        let numbers = |e: &Expr| e.get_type(schema).map(|t| t.is_numeric()).unwrap_or(false);
        match expr.op {
            BinaryOperator::Divide if numbers(&expr.left) && numbers(&expr.right) => {
                let left = cast(expr.left, DataType::Float64);
                let right = cast(expr.right, DataType::Float64);
                Ok(PlannerResult::Planned(binary_expr(left, Operator::Divide, right)))
            }
            BinaryOperator::DuckIntegerDivide | BinaryOperator::MyIntegerDivide => {
                if integers(&expr.left) && integers(&expr.right) {
                    return Ok(PlannerResult::Planned(binary_expr(expr.left, Operator::Divide, expr.right)));
                }
                let quotient = binary_expr(
                    cast(expr.left, DataType::Float64),
                    Operator::Divide,
                    cast(expr.right, DataType::Float64),
                );
                Ok(PlannerResult::Planned(quotient))
            }
            _ => Ok(PlannerResult::Original(expr)),
        }
    }
}

/// DuckDB date functions DataFusion does not have, with DuckDB's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DateFn {
    /// `date_diff(part, start, end)`: partition boundaries crossed.
    DateDiff,
    /// `year(ts)`, `month(ts)`, ...: one field as BIGINT.
    Field(DateField),
    DayName,
    MonthName,
    /// `last_day(date)`: the month's last day.
    LastDay,
    /// `epoch(ts)`: seconds since 1970 as DOUBLE.
    Epoch,
    /// `epoch_ms(ts)`: milliseconds since 1970 as BIGINT.
    EpochMs,
}

/// Fields DuckDB extracts with a function of their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DateField {
    Year,
    Quarter,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    DayOfWeek,
    IsoDow,
    DayOfYear,
    Week,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DuckDateUdf {
    name: &'static str,
    aliases: Vec<String>,
    function: DateFn,
    signature: Signature,
}

/// The date functions, by DuckDB name.
fn date_udfs() -> Vec<ScalarUDF> {
    use DateField::*;
    let fields = [
        ("year", Year),
        ("quarter", Quarter),
        ("month", Month),
        ("day", Day),
        ("hour", Hour),
        ("minute", Minute),
        ("second", Second),
        ("dayofweek", DayOfWeek),
        ("isodow", IsoDow),
        ("dayofyear", DayOfYear),
        ("week", Week),
    ];
    let mut out: Vec<(&'static str, Vec<&str>, DateFn)> =
        vec![("date_diff", vec!["datediff"], DateFn::DateDiff), ("dayname", vec![], DateFn::DayName)];
    out.push(("monthname", vec![], DateFn::MonthName));
    out.push(("last_day", vec![], DateFn::LastDay));
    out.push(("epoch", vec![], DateFn::Epoch));
    out.push(("epoch_ms", vec![], DateFn::EpochMs));
    out.extend(fields.into_iter().map(|(n, f)| (n, vec![], DateFn::Field(f))));
    out.into_iter()
        .map(|(name, aliases, function)| {
            ScalarUDF::new_from_impl(DuckDateUdf {
                name,
                aliases: aliases.into_iter().map(str::to_string).collect(),
                function,
                signature: Signature::variadic_any(Volatility::Immutable),
            })
        })
        .collect()
}

impl ScalarUDFImpl for DuckDateUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let arity = if self.function == DateFn::DateDiff { 3 } else { 1 };
        if args.len() != arity {
            return datafusion::common::plan_err!("{}() takes {arity} argument(s), got {}", self.name, args.len());
        }
        Ok(match self.function {
            DateFn::DateDiff | DateFn::Field(_) | DateFn::EpochMs => DataType::Int64,
            DateFn::Epoch => DataType::Float64,
            DateFn::DayName | DateFn::MonthName => DataType::Utf8,
            DateFn::LastDay => DataType::Date32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let times = |a: &ArrayRef| -> Result<ArrayRef> { Ok(cast_array(a, &micros)?) };
        let at = |v: i64| chrono::DateTime::from_timestamp_micros(v).map(|d| d.naive_utc());
        let out: ArrayRef = match self.function {
            DateFn::DateDiff => {
                let part = cast_array(&arrays[0], &DataType::Utf8)?;
                let part = part.as_string::<i32>();
                let (a, b) = (times(&arrays[1])?, times(&arrays[2])?);
                let (a, b) =
                    (a.as_primitive::<TimestampMicrosecondType>(), b.as_primitive::<TimestampMicrosecondType>());
                let mut values = Vec::with_capacity(a.len());
                for i in 0..a.len() {
                    if part.is_null(i) || a.is_null(i) || b.is_null(i) {
                        values.push(None);
                        continue;
                    }
                    values.push(Some(date_diff(part.value(i), a.value(i), b.value(i))?));
                }
                Arc::new(Int64Array::from(values))
            }
            function => {
                let t = times(&arrays[0])?;
                let t = t.as_primitive::<TimestampMicrosecondType>();
                let each = |i: usize| if t.is_null(i) { None } else { at(t.value(i)) };
                match function {
                    DateFn::Field(f) => {
                        Arc::new((0..t.len()).map(|i| each(i).map(|d| field(f, d))).collect::<Int64Array>())
                    }
                    DateFn::Epoch => Arc::new(
                        (0..t.len())
                            .map(|i| (!t.is_null(i)).then(|| t.value(i) as f64 / 1e6))
                            .collect::<Float64Array>(),
                    ),
                    DateFn::EpochMs => Arc::new(
                        (0..t.len())
                            .map(|i| (!t.is_null(i)).then(|| t.value(i).div_euclid(1000)))
                            .collect::<Int64Array>(),
                    ),
                    DateFn::DayName => Arc::new(
                        (0..t.len()).map(|i| each(i).map(|d| d.format("%A").to_string())).collect::<StringArray>(),
                    ),
                    DateFn::MonthName => Arc::new(
                        (0..t.len()).map(|i| each(i).map(|d| d.format("%B").to_string())).collect::<StringArray>(),
                    ),
                    _ => Arc::new(
                        (0..t.len())
                            .map(|i| each(i).map(|d| days_since_epoch(last_day(d.date()))))
                            .collect::<Date32Array>(),
                    ),
                }
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

fn days_since_epoch(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::default()).num_days() as i32
}

fn last_day(d: chrono::NaiveDate) -> chrono::NaiveDate {
    use chrono::Datelike;
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1).and_then(|n| n.pred_opt()).unwrap_or(d)
}

fn field(f: DateField, d: chrono::NaiveDateTime) -> i64 {
    use chrono::{Datelike, Timelike};
    let small = match f {
        DateField::Year => return d.year() as i64,
        DateField::Quarter => d.month0() / 3 + 1,
        DateField::Month => d.month(),
        DateField::Day => d.day(),
        DateField::Hour => d.hour(),
        DateField::Minute => d.minute(),
        DateField::Second => d.second(),
        DateField::DayOfWeek => d.weekday().num_days_from_sunday(),
        DateField::IsoDow => d.weekday().number_from_monday(),
        DateField::DayOfYear => d.ordinal(),
        DateField::Week => d.iso_week().week(),
    };
    small as i64
}

/// DuckDB's `date_diff`: how many boundaries of `part` lie between two
/// times (microseconds since the epoch).
fn date_diff(part: &str, a: i64, b: i64) -> Result<i64> {
    use chrono::Datelike;
    let to = |v: i64| chrono::DateTime::from_timestamp_micros(v).map(|d| d.naive_utc()).unwrap_or_default();
    let (x, y) = (to(a), to(b));
    let unit = |size: i64| b.div_euclid(size) - a.div_euclid(size);
    let part = part.trim().to_ascii_lowercase();
    Ok(match part.as_str() {
        "year" | "years" | "yr" | "yrs" | "y" | "yy" | "yyyy" => (y.year() - x.year()) as i64,
        "quarter" | "quarters" | "q" => {
            let q = |d: chrono::NaiveDateTime| d.year() as i64 * 4 + (d.month0() / 3) as i64;
            q(y) - q(x)
        }
        "month" | "months" | "mon" | "mons" => {
            let m = |d: chrono::NaiveDateTime| d.year() as i64 * 12 + d.month0() as i64;
            m(y) - m(x)
        }
        // Whole weeks of days, as DuckDB counts them (not Mondays crossed).
        "week" | "weeks" | "w" => (y.date() - x.date()).num_days() / 7,
        "day" | "days" | "d" | "dayofmonth" => (y.date() - x.date()).num_days(),
        "hour" | "hours" | "h" | "hr" | "hrs" => unit(3_600_000_000),
        "minute" | "minutes" | "min" | "mins" | "m" => unit(60_000_000),
        "second" | "seconds" | "sec" | "secs" | "s" => unit(1_000_000),
        "millisecond" | "milliseconds" | "ms" | "msec" => unit(1_000),
        "microsecond" | "microseconds" | "us" | "usec" => b - a,
        _ => {
            return datafusion::common::exec_err!(
                "date_diff: unknown date part `{part}` (year, quarter, month, week, day, hour, minute, second, \
                 millisecond, microsecond)"
            )
        }
    })
}

/// DuckDB aggregates DataFusion has under no name: `count_if(cond)`,
/// `arg_max(arg, val)` / `max_by`, `arg_min(arg, val)` / `min_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DuckAggregate {
    CountIf,
    ArgMax,
    ArgMin,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DuckAggregateUdf {
    name: &'static str,
    aliases: Vec<String>,
    function: DuckAggregate,
    signature: Signature,
}

fn aggregate_udfs() -> Vec<AggregateUDF> {
    [
        ("count_if", vec![], DuckAggregate::CountIf, Signature::exact(vec![DataType::Boolean], Volatility::Immutable)),
        ("arg_max", vec!["max_by".to_string()], DuckAggregate::ArgMax, Signature::any(2, Volatility::Immutable)),
        ("arg_min", vec!["min_by".to_string()], DuckAggregate::ArgMin, Signature::any(2, Volatility::Immutable)),
    ]
    .into_iter()
    .map(|(name, aliases, function, signature)| {
        AggregateUDF::new_from_impl(DuckAggregateUdf { name, aliases, function, signature })
    })
    .collect()
}

impl AggregateUDFImpl for DuckAggregateUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            DuckAggregate::CountIf => DataType::Int64,
            _ => args[0].clone(),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(match self.function {
            DuckAggregate::CountIf => {
                vec![Arc::new(Field::new(format!("{}[count]", args.name), DataType::Int64, true))]
            }
            _ => args
                .input_fields
                .iter()
                .zip(["arg", "val"])
                .map(|(f, what)| Arc::new(Field::new(format!("{}[{what}]", args.name), f.data_type().clone(), true)))
                .collect(),
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.function {
            DuckAggregate::CountIf => Box::new(CountIf(0)),
            f => {
                let null = |i: usize| ScalarValue::try_from(args.expr_fields[i].data_type());
                Box::new(ArgBy { max: f == DuckAggregate::ArgMax, arg: null(0)?, val: null(1)? })
            }
        })
    }
}

#[derive(Debug)]
struct CountIf(i64);

impl Accumulator for CountIf {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0 += values[0].as_boolean().true_count() as i64;
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0 += states[0].as_primitive::<Int64Type>().iter().flatten().sum::<i64>();
        Ok(())
    }
}

/// The `arg` of the row with the largest (smallest) non-NULL `val`; the
/// first such row wins a tie.
#[derive(Debug)]
struct ArgBy {
    max: bool,
    arg: ScalarValue,
    val: ScalarValue,
}

impl ArgBy {
    fn offer(&mut self, args: &ArrayRef, vals: &ArrayRef) -> Result<()> {
        for i in 0..vals.len() {
            if vals.is_null(i) {
                continue;
            }
            let val = ScalarValue::try_from_array(vals, i)?;
            let better = self.val.is_null()
                || match val.partial_cmp(&self.val) {
                    Some(std::cmp::Ordering::Greater) => self.max,
                    Some(std::cmp::Ordering::Less) => !self.max,
                    _ => false,
                };
            if better {
                self.arg = ScalarValue::try_from_array(args, i)?;
                self.val = val;
            }
        }
        Ok(())
    }
}

impl Accumulator for ArgBy {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.offer(&values[0], &values[1])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.arg.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.arg.size() + self.val.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.arg.clone(), self.val.clone()])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.offer(&states[0], &states[1])
    }
}
