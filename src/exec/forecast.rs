//! Forecast models: a table model with `forecast:` in its config. Its SQL
//! gives the history; the metric is computed per bucket and dimension value
//! on the session, each dimension value's series is forecast
//! (`crate::series`), and the table holds the next `horizon` buckets after
//! the last complete one: point forecast, bounds at `level`, the model
//! used and the bucket the training ended with.

use std::collections::BTreeMap;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::*;
use crate::compile::assertions::monitor::series_sql;
use crate::project::config::ForecastSpec;
use crate::series::{self, Bucket};

/// A dimension value's text per dimension (None: NULL), and its buckets.
type Series = BTreeMap<Vec<Option<String>>, BTreeMap<i64, f64>>;

impl Engine {
    /// Plans a forecast model's table from its SQL's rows.
    pub(super) async fn plan_forecast(
        &self,
        model: &crate::compile::CompiledModel,
        spec: &ForecastSpec,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<DataFrame, ExecError> {
        let input = format!("__wh_in_{}", model.name);
        self.materialize(&input, self.plan(&model.sql).await?).await?;
        let dims = &spec.dimensions.0;
        let sql = series_sql(&spec.metric, &spec.timestamp_column, spec.time_bucket, dims, &input, None);
        let result = self.query(&sql).await;
        self.deregister(&input);
        let (_, batches) = result.map_err(|e| forecast_error(format!("cannot compute the metric per bucket: {e}")))?;
        let series = read_series(&batches, dims.len())?;
        let complete_before = complete_before(spec, now);
        let spec_owned = spec.clone();
        let fitted = tokio::task::spawn_blocking(move || forecast_batch(&spec_owned, &series, complete_before));
        let batch = fitted.await.map_err(|e| forecast_error(format!("the forecast stopped: {e}")))??;
        let name = format!("__wh_forecast_{}", model.name);
        match &self.scratch {
            Some(scratch) => self.register_shared(scratch, &name, batch.schema(), &[batch]).await?,
            None => self.register_batches(&name, batch.schema(), vec![batch])?,
        }
        self.ctx.table(TableReference::bare(name)).await.map_err(runtime_error)
    }
}

fn forecast_error(message: String) -> ExecError {
    ExecError::Upstream {
        message: format!("cannot forecast: {message}"),
        hint: Some(
            "see docs/src/monitoring.md, Forecasts: the SQL returns the history, `forecast:` names its columns".into(),
        ),
    }
}

/// Buckets ending after this (microseconds) are not complete: the
/// `as_of_date` var's day, else now.
fn complete_before(spec: &ForecastSpec, now: chrono::DateTime<chrono::Utc>) -> i64 {
    let day = spec.as_of.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
    match day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
        Some(t) => t.and_utc().timestamp_micros(),
        None => now.timestamp_micros(),
    }
}

/// Reads `series_sql`'s rows into one series per dimension value.
fn read_series(batches: &[RecordBatch], dims: usize) -> Result<Series, ExecError> {
    let mut out = Series::new();
    for b in batches {
        let texts: Vec<Option<StringArray>> = (0..dims).map(|i| super::columns::text(b, 3 + i)).collect();
        let (Some(buckets), Some(values)) = (super::columns::micros(b, 0), super::columns::floats(b, 2)) else {
            return Err(forecast_error("the metric's buckets could not be read".into()));
        };
        for i in (0..b.num_rows()).filter(|i| !buckets.is_null(*i)) {
            let key = texts.iter().map(|t| t.as_ref().filter(|t| !t.is_null(i)).map(|t| t.value(i).to_string()));
            let value = if values.is_null(i) { 0.0 } else { values.value(i) };
            out.entry(key.collect()).or_default().insert(buckets.value(i), value);
        }
    }
    Ok(out)
}

/// One forecast row.
struct Row {
    dims: Vec<Option<String>>,
    bucket: i64,
    step: i32,
    point: f64,
    lower: f64,
    upper: f64,
    model: String,
    trained_through: i64,
}

/// Forecasts every series from its first bucket to the last complete
/// bucket of any (a missing bucket counts as 0). A series too short for
/// the method is forecast by seasonal naive, or left out when it is too
/// short for that too.
fn forecast_batch(spec: &ForecastSpec, series: &Series, complete_before: i64) -> Result<RecordBatch, ExecError> {
    let step = spec.time_bucket.micros();
    let last = series.values().flat_map(|s| s.keys().copied()).filter(|b| b + step <= complete_before).max();
    let last = last.ok_or_else(|| forecast_error("the SQL returned no complete bucket".into()))?;
    let inputs: Vec<(&Vec<Option<String>>, Vec<f64>)> = series
        .iter()
        .filter(|(_, values)| values.keys().next().is_some_and(|first| *first <= last))
        .map(|(dims, values)| (dims, history(spec, values, last)))
        .collect();
    let fitted = fit_all(spec, &inputs);
    let mut rows = Vec::new();
    for ((dims, _), f) in inputs.iter().zip(fitted) {
        // Too short even for seasonal naive: left out (a new value).
        let Some(f) = f else { continue };
        let f = f.map_err(|e| forecast_error(format!("{e} for {}", dimension_text(&spec.dimensions.0, dims))))?;
        for h in 0..spec.horizon {
            rows.push(Row {
                dims: (*dims).clone(),
                bucket: last + (h as i64 + 1) * step,
                step: h as i32 + 1,
                point: f.point[h],
                lower: f.lower[h],
                upper: f.upper[h],
                model: f.model.clone(),
                trained_through: last,
            });
        }
    }
    table(spec, &rows).map_err(|e| forecast_error(e.to_string()))
}

/// A series' values from its first bucket (or the training period's) to
/// `last`; a bucket without rows is 0.
fn history(spec: &ForecastSpec, values: &BTreeMap<i64, f64>, last: i64) -> Vec<f64> {
    let step = spec.time_bucket.micros();
    let first = values.keys().next().copied().unwrap_or(last);
    let start = spec.training_period.map(|n| last - (n.max(1) as i64 - 1) * step).unwrap_or(first).max(first);
    (start..=last).step_by(step as usize).map(|b| values.get(&b).copied().unwrap_or(0.0)).collect()
}

type Fitted = Option<Result<series::Forecast, series::SeriesError>>;

/// Forecasts every series, on as many threads as there are cores; the
/// results are in the order of `inputs` (each fit is deterministic).
fn fit_all(spec: &ForecastSpec, inputs: &[(&Vec<Option<String>>, Vec<f64>)]) -> Vec<Fitted> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(inputs.len().max(1));
    let fit = |y: &[f64]| series::forecast_or_naive(y, spec.method, spec.season(), spec.horizon, spec.level);
    let mut out: Vec<Fitted> = vec![None; inputs.len()];
    std::thread::scope(|scope| {
        let fit = &fit;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mine = inputs.iter().enumerate().skip(t).step_by(threads);
                    mine.map(|(i, (_, y))| (i, fit(y))).collect::<Vec<_>>()
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            let done = h.join().unwrap_or_else(|_| {
                let failed = || Some(Err(series::SeriesError::Model("the forecasting library failed".into())));
                (t..inputs.len()).step_by(threads).map(|i| (i, failed())).collect()
            });
            for (i, f) in done {
                out[i] = f;
            }
        }
    });
    out
}

/// `category=Libros, region=EU`, as the monitors name a dimension value.
fn dimension_text(names: &[String], values: &[Option<String>]) -> String {
    let parts: Vec<String> =
        names.iter().zip(values).map(|(n, v)| format!("{n}={}", v.as_deref().unwrap_or("NULL"))).collect();
    if parts.is_empty() {
        "the series".into()
    } else {
        parts.join(", ")
    }
}

/// The columns of a forecast model's table: the bucket (a date for days
/// and weeks, a timestamp for hours, named as the timestamp column), the
/// dimensions (text), `step`, `forecast`, `lower`, `upper`, `level`,
/// `method`, `trained_through`.
pub fn forecast_schema(spec: &ForecastSpec) -> Schema {
    let time = match spec.time_bucket {
        Bucket::Hour => DataType::Timestamp(TimeUnit::Microsecond, None),
        _ => DataType::Date32,
    };
    let mut fields = vec![Field::new(&spec.timestamp_column, time.clone(), true)];
    fields.extend(spec.dimensions.0.iter().map(|d| Field::new(d, DataType::Utf8, true)));
    fields.push(Field::new("step", DataType::Int32, true));
    fields.extend(["forecast", "lower", "upper", "level"].map(|n| Field::new(n, DataType::Float64, true)));
    fields.push(Field::new("method", DataType::Utf8, true));
    fields.push(Field::new("trained_through", time, true));
    Schema::new(fields)
}

/// The table of the forecast rows, in `forecast_schema`'s columns.
fn table(spec: &ForecastSpec, rows: &[Row]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let time = |f: &dyn Fn(&Row) -> i64| -> ArrayRef {
        match spec.time_bucket {
            Bucket::Hour => Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f))),
            _ => Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| (f(r) / 86_400_000_000) as i32))),
        }
    };
    let number = |f: &dyn Fn(&Row) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(f))) };
    let mut columns: Vec<(String, ArrayRef)> = vec![(spec.timestamp_column.clone(), time(&|r| r.bucket))];
    for (i, d) in spec.dimensions.0.iter().enumerate() {
        columns.push((d.clone(), Arc::new(StringArray::from_iter(rows.iter().map(|r| r.dims[i].clone())))));
    }
    columns.extend([
        ("step".to_string(), Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.step))) as ArrayRef),
        ("forecast".into(), number(&|r| r.point)),
        ("lower".into(), number(&|r| r.lower)),
        ("upper".into(), number(&|r| r.upper)),
        ("level".into(), number(&|_| spec.level)),
        ("method".into(), Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.model.as_str())))),
        ("trained_through".into(), time(&|r| r.trained_through)),
    ]);
    RecordBatch::try_new(Arc::new(forecast_schema(spec)), columns.into_iter().map(|(_, a)| a).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn spec(horizon: usize) -> ForecastSpec {
        let yaml = format!("{{metric: sum(x), timestamp_column: d, dimensions: [c], horizon: {horizon}}}");
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn each_series_is_forecast_after_the_last_complete_bucket() {
        let week = [10.0, 11.0, 12.0, 11.0, 15.0, 18.0, 6.0];
        let mut series = Series::new();
        for (c, scale) in [("A", 1.0), ("B", 2.0)] {
            let s = (0..43).map(|i| (i * DAY, week[(i % 7) as usize] * scale)).collect();
            series.insert(vec![Some(c.to_string())], s);
        }
        // Day 42 is still running: the forecast starts on it.
        let batch = forecast_batch(&spec(3), &series, 42 * DAY + 5).unwrap();
        assert_eq!(batch.num_rows(), 6);
        let days = batch.column(0).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!((days.value(0), days.value(2)), (42, 44));
        let point = batch.column_by_name("forecast").unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
        // Day 42 is a day 0 of the week: 10 for A, 20 for B.
        assert!((point.value(0) - 10.0).abs() < 0.5 && (point.value(3) - 20.0).abs() < 1.0, "{point:?}");
        let through = batch.column_by_name("trained_through").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(through.value(0), 41);
    }

    #[test]
    fn a_short_series_falls_back_to_seasonal_naive_or_is_left_out() {
        let mut series = Series::new();
        series.insert(vec![Some("A".into())], (0..10).map(|i| (i * DAY, 1.0 + i as f64)).collect());
        series.insert(vec![Some("B".into())], (5..10).map(|i| (i * DAY, 1.0)).collect());
        let batch = forecast_batch(&spec(3), &series, i64::MAX).unwrap();
        assert_eq!(batch.num_rows(), 3, "B has 5 days: left out");
        let method = batch.column_by_name("method").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(method.value(0), "seasonal_naive(7)");
        let mut broken = Series::new();
        broken.insert(vec![Some("A".into())], (0..20).map(|i| (i * DAY, f64::INFINITY)).collect());
        let e = forecast_batch(&spec(3), &broken, i64::MAX).unwrap_err().to_string();
        assert!(e.contains("c=A") && e.contains("finite"), "{e}");
    }
}
