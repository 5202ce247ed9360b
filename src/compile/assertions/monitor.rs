//! Metric monitors: the `metric_anomalies` test. A monitor computes an
//! aggregate (`sum(amount)`, `count(*)`, a null rate) per time bucket and,
//! optionally, per dimension value, and flags the latest buckets whose value
//! falls outside the band its history predicts. This module parses the
//! declaration and writes the per-bucket SQL; scoring and the metric
//! history are `crate::quality::monitor`.
//!
//! ```yaml
//! data_tests:
//!   - metric_anomalies:
//!       metric: sum(revenue)
//!       timestamp_column: order_date
//!       time_bucket: day            # hour | day | week
//!       dimensions: [category]
//!       method: seasonal            # zscore | seasonal
//!       anomaly_sensitivity: 3      # the band is expected ± 3 σ
//!       anomaly_direction: drop     # drop | spike | both
//!       training_period: 56         # buckets (or {period: day, count: 56})
//!       detection_period: 1         # the latest buckets scored
//!       min_training_set_size: 28
//!       ignore_small_changes: {drop_failure_percent_threshold: 10}
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// The test kind that declares a monitor.
pub const KIND: &str = "metric_anomalies";

/// The keys a monitor accepts, beside every test's common ones.
const KEYS: &[&str] = &[
    "metric",
    "timestamp_column",
    "time_bucket",
    "dimensions",
    "method",
    "anomaly_sensitivity",
    "anomaly_direction",
    "training_period",
    "detection_period",
    "min_training_set_size",
    "seasonality",
    "ignore_small_changes",
    "forecaster",
    "forecast_model",
    "target",
];

pub use crate::series::Bucket;
use crate::series::Forecaster;

/// How the expected band is learnt from the training buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Mean and standard deviation of every training bucket.
    ZScore,
    /// Mean and standard deviation of the training buckets in the same
    /// phase of the season (the same weekday, the same hour).
    Seasonal,
    /// A forecast of the scored buckets: fitted on the training buckets,
    /// or what a forecast model forecast for them (`forecast_model`).
    Forecast,
}

impl Method {
    /// Returns the method's name as declared.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ZScore => "zscore",
            Method::Seasonal => "seasonal",
            Method::Forecast => "forecast",
        }
    }
}

/// Which way a value must leave the band to be an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Both,
    Drop,
    Spike,
}

/// The value below which a bucket compared with a forecast model's
/// forecast is "forecast not met".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The forecast's lower bound.
    Lower,
    /// The point forecast.
    Forecast,
    /// This percentage of the point forecast.
    Percent(f64),
    /// A stated value.
    Value(f64),
}

/// A forecast for one bucket: point, lower and upper bound, and the
/// bounds' level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecasted {
    pub point: f64,
    pub lower: f64,
    pub upper: f64,
    pub level: f64,
}

/// What the monitor knows before it runs: the metric history (per
/// dimension value and bucket start, in microseconds) and the time before
/// which buckets are complete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub history: BTreeMap<(String, i64), f64>,
    /// Buckets that end after this (microseconds since the epoch) are not
    /// complete and not scored.
    pub complete_before: i64,
    /// Buckets from here on are computed again (late rows land in them);
    /// None: every bucket is computed.
    pub recompute_from: Option<i64>,
    /// The score of each (dimension, bucket) an earlier run found
    /// anomalous, to tell an ongoing anomaly from a new one.
    pub flagged: BTreeMap<(String, i64), f64>,
    /// With `forecast_model`: the latest forecast made for each
    /// (dimension, bucket) before that bucket began.
    pub forecasts: BTreeMap<(String, i64), Forecasted>,
}

/// A parsed `metric_anomalies` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub metric: String,
    pub timestamp: String,
    pub bucket: Bucket,
    pub dimensions: Vec<String>,
    pub method: Method,
    pub sensitivity: f64,
    pub direction: Direction,
    /// Buckets before the detection window that the band is learnt from.
    pub training: usize,
    /// The latest complete buckets scored in each run.
    pub detection: usize,
    /// Training buckets needed before anything is scored.
    pub min_history: usize,
    /// Buckets per season (7 for weekdays of daily buckets).
    pub period: usize,
    /// Changes smaller than this percentage of the expected value are never
    /// anomalies: (drop, spike).
    pub min_change_pct: (f64, f64),
    /// The `as_of_date` var: buckets from that day on are not scored.
    pub as_of: Option<NaiveDate>,
    /// `method: forecast` fitted here: how.
    pub forecaster: Forecaster,
    /// `method: forecast`: the forecast model whose forecasts are the band.
    pub forecast_model: Option<String>,
    /// With `forecast_model`: below what a bucket is "forecast not met".
    pub target: Target,
    /// A digest of what the values depend on (subject, metric, time
    /// column, bucket, dimensions, filter): history is kept per key.
    pub key: String,
    /// Filled in before the run.
    pub known: Arc<Known>,
}

/// Parses a monitor's parameters; `subject` and `filter` go into its key.
pub fn parse(
    params: &Map<String, Json>,
    subject: &str,
    filter: Option<&str>,
    as_of: Option<&str>,
) -> Result<Monitor, String> {
    if let Some(unknown) = params.keys().find(|k| !KEYS.contains(&k.as_str())) {
        let within = KEYS.iter().find(|k| k.contains(unknown.as_str())).map(|k| format!("did you mean `{k}`?"));
        let hint = crate::diagnostic::did_you_mean(unknown, KEYS.iter().copied()).or(within).unwrap_or_default();
        return Err(format!("metric_anomalies has no parameter `{unknown}`{}", suffix(&hint)));
    }
    let text = |k: &str| params.get(k).and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty());
    let metric = text("metric").ok_or("metric_anomalies needs `metric`, an aggregate such as `sum(amount)`")?;
    let timestamp = text("timestamp_column").ok_or("metric_anomalies needs `timestamp_column`")?;
    let bucket = bucket(params.get("time_bucket"))?;
    let method = match text("method").unwrap_or("zscore") {
        "zscore" => Method::ZScore,
        "seasonal" => Method::Seasonal,
        "forecast" => Method::Forecast,
        other => return Err(format!("method `{other}` is not one of zscore, seasonal, forecast")),
    };
    let period = period(params.get("seasonality"), bucket, method)?;
    let (training, min_history) = match method {
        Method::ZScore => (28, 14),
        Method::Seasonal => (8 * period, 4 * period),
        Method::Forecast => (16 * period, 2 * period + 1),
    };
    let training = buckets(params.get("training_period"), bucket, "training_period")?.unwrap_or(training);
    let min_history = count(params.get("min_training_set_size"), "min_training_set_size")?.unwrap_or(min_history);
    let dimensions = dimensions(params.get("dimensions"))?;
    let (forecaster, forecast_model, target) = forecast_params(params, method)?;
    let default_direction = if forecast_model.is_some() { "drop" } else { "both" };
    let mut m = Monitor {
        metric: metric.to_string(),
        timestamp: timestamp.to_string(),
        bucket,
        dimensions,
        method,
        sensitivity: sensitivity(params.get("anomaly_sensitivity"))?,
        direction: direction(text("anomaly_direction").or(Some(default_direction)))?,
        training,
        detection: buckets(params.get("detection_period"), bucket, "detection_period")?.unwrap_or(1),
        min_history: min_history.min(training),
        period,
        min_change_pct: small_changes(params.get("ignore_small_changes"))?,
        as_of: as_of.map(parse_day).transpose()?,
        forecaster,
        forecast_model,
        target,
        key: String::new(),
        known: Arc::default(),
    };
    if m.training == 0 || m.detection == 0 {
        return Err("training_period and detection_period must be at least one bucket".into());
    }
    m.key = key(&m, subject, filter);
    Ok(m)
}

/// `forecaster`, `forecast_model` and `target`, which only `method:
/// forecast` takes.
fn forecast_params(params: &Map<String, Json>, method: Method) -> Result<(Forecaster, Option<String>, Target), String> {
    let text = |k: &str| params.get(k).and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty());
    let target = params.get("target");
    let given = ["forecaster", "forecast_model"].into_iter().find(|k| text(k).is_some());
    if method != Method::Forecast {
        return match given.or(target.map(|_| "target")) {
            Some(k) => Err(format!("`{k}` applies to method `forecast` only")),
            None => Ok((Forecaster::Mstl, None, Target::Lower)),
        };
    }
    let forecaster = text("forecaster").map(Forecaster::parse).transpose()?.unwrap_or_default();
    let model = text("forecast_model").map(str::to_string);
    if model.is_none() && target.is_some() {
        return Err("`target` compares with a forecast model's forecast: set `forecast_model`".into());
    }
    Ok((forecaster, model, self::target(target)?))
}

/// `lower` (default), `forecast`, `95%` of the forecast, or a number.
fn target(v: Option<&Json>) -> Result<Target, String> {
    let wrong = |j: &Json| {
        format!("target is `lower`, `forecast`, a percentage of the forecast (`95%`) or a number, not `{j}`")
    };
    match v {
        None => Ok(Target::Lower),
        Some(Json::Number(n)) => n.as_f64().map(Target::Value).ok_or_else(|| wrong(v.unwrap())),
        Some(j @ Json::String(s)) => match s.trim() {
            "lower" => Ok(Target::Lower),
            "forecast" => Ok(Target::Forecast),
            pct if pct.ends_with('%') => {
                pct.trim_end_matches('%').trim().parse::<f64>().map(Target::Percent).map_err(|_| wrong(j))
            }
            _ => Err(wrong(j)),
        },
        Some(j) => Err(wrong(j)),
    }
}

fn suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("as_of_date `{text}` is not a YYYY-MM-DD date"))
}

/// `day`, or Elementary's `{period: day, count: 1}`.
fn bucket(v: Option<&Json>) -> Result<Bucket, String> {
    match v {
        None => Ok(Bucket::Day),
        Some(Json::String(s)) => Bucket::parse(s.trim()),
        Some(Json::Object(o)) => {
            if o.get("count").and_then(Json::as_u64).unwrap_or(1) != 1 {
                return Err("time_bucket's `count` must be 1: buckets are one hour, day or week".into());
            }
            Bucket::parse(o.get("period").and_then(Json::as_str).unwrap_or("day"))
        }
        Some(other) => Err(format!("time_bucket is hour, day or week, not `{other}`")),
    }
}

/// A number of buckets: a whole number, or `{period: day, count: 14}`
/// converted to buckets.
fn buckets(v: Option<&Json>, bucket: Bucket, key: &str) -> Result<Option<usize>, String> {
    match v {
        None => Ok(None),
        Some(Json::Object(o)) => {
            let period = Bucket::parse(o.get("period").and_then(Json::as_str).unwrap_or(bucket.as_str()))?;
            let n = o.get("count").and_then(Json::as_u64).ok_or(format!("{key} needs a whole-number `count`"))?;
            let total = period.micros().saturating_mul(n as i64);
            Ok(Some((total / bucket.micros()) as usize))
        }
        other => count(other, key),
    }
}

fn count(v: Option<&Json>, key: &str) -> Result<Option<usize>, String> {
    match v {
        None => Ok(None),
        Some(j) => j
            .as_u64()
            .filter(|n| *n <= 100_000)
            .map(|n| Some(n as usize))
            .ok_or(format!("{key} must be a whole number of buckets (at most 100000), not `{j}`")),
    }
}

fn period(v: Option<&Json>, bucket: Bucket, method: Method) -> Result<usize, String> {
    let default = bucket.default_season();
    let p = match v {
        None => default,
        Some(Json::String(s)) => match (s.as_str(), bucket) {
            ("day_of_week", Bucket::Day) => 7,
            ("hour_of_day", Bucket::Hour) => 24,
            ("hour_of_week", Bucket::Hour) => 168,
            ("week_of_year", Bucket::Week) => 52,
            (other, b) => return Err(format!("seasonality `{other}` does not fit {} buckets", b.as_str())),
        },
        Some(j) => {
            j.as_u64().filter(|n| (2..=1000).contains(n)).ok_or("seasonality must be 2 to 1000 buckets")? as usize
        }
    };
    if v.is_some() && method == Method::ZScore {
        return Err("seasonality applies to methods `seasonal` and `forecast` only".into());
    }
    Ok(p)
}

fn dimensions(v: Option<&Json>) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Json::String(s)) => Ok(vec![s.clone()]),
        Some(Json::Array(a)) => a
            .iter()
            .map(|d| d.as_str().map(str::to_string).ok_or(format!("a dimension is a column name, not `{d}`")))
            .collect(),
        Some(other) => Err(format!("dimensions is a list of columns, not `{other}`")),
    }
}

fn sensitivity(v: Option<&Json>) -> Result<f64, String> {
    match v {
        None => Ok(3.0),
        Some(j) => j.as_f64().filter(|x| *x > 0.0 && x.is_finite()).ok_or(format!(
            "anomaly_sensitivity is the band's half-width in standard deviations, a number above 0, not `{j}`"
        )),
    }
}

fn direction(v: Option<&str>) -> Result<Direction, String> {
    match v.unwrap_or("both") {
        "both" => Ok(Direction::Both),
        "drop" => Ok(Direction::Drop),
        "spike" => Ok(Direction::Spike),
        other => Err(format!("anomaly_direction `{other}` is not one of both, drop, spike")),
    }
}

fn small_changes(v: Option<&Json>) -> Result<(f64, f64), String> {
    let Some(v) = v else { return Ok((0.0, 0.0)) };
    let o = v.as_object().ok_or("ignore_small_changes is a mapping of percentages")?;
    let pct = |k: &str| -> Result<f64, String> {
        match o.get(k) {
            None => Ok(0.0),
            Some(j) => j.as_f64().filter(|x| *x >= 0.0).ok_or(format!("`{k}` is a percentage, not `{j}`")),
        }
    };
    if let Some(k) = o.keys().find(|k| !k.ends_with("_failure_percent_threshold")) {
        return Err(format!(
            "ignore_small_changes has no `{k}`: use drop_failure_percent_threshold, spike_failure_percent_threshold"
        ));
    }
    Ok((pct("drop_failure_percent_threshold")?, pct("spike_failure_percent_threshold")?))
}

fn key(m: &Monitor, subject: &str, filter: Option<&str>) -> String {
    let text = format!(
        "{subject}\n{}\n{}\n{}\n{}\n{}",
        m.metric,
        m.timestamp,
        m.bucket.as_str(),
        m.dimensions.join(","),
        filter.unwrap_or("")
    );
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Returns the SQL giving the metric per bucket and dimension value:
/// columns `wh_bucket` (timestamp), `wh_dimension` (text, `col=value`
/// pairs; empty without dimensions) and `wh_value` (double), from `since`
/// (microseconds) on when given.
pub fn bucket_sql(m: &Monitor, scoped: &str, since: Option<i64>) -> String {
    series_sql(&m.metric, &m.timestamp, m.bucket, &m.dimensions, scoped, since)
}

/// The per-bucket SQL of a metric over `relation` (see `bucket_sql`); each
/// dimension is also a text column of its own, `wh_d0`, `wh_d1`, ...
pub fn series_sql(
    metric: &str,
    timestamp: &str,
    bucket: Bucket,
    dimensions: &[String],
    relation: &str,
    since: Option<i64>,
) -> String {
    let ts = quote(timestamp);
    let bucket = format!("date_trunc('{}', cast({ts} as timestamp))", bucket.as_str());
    let dimension = dimension_sql(dimensions);
    let own: String =
        dimensions.iter().enumerate().map(|(i, d)| format!(", cast({} as varchar) as wh_d{i}", quote(d))).collect();
    let group: String = (0..dimensions.len()).map(|i| format!(", {}", i + 4)).collect();
    let since = since.map(|s| format!(" and {bucket} >= to_timestamp_micros({s})")).unwrap_or_default();
    format!(
        "select {bucket} as wh_bucket, {dimension} as wh_dimension, cast({metric} as double) as wh_value{own} \
         from {relation} as t where {ts} is not null{since} group by 1, 2{group}"
    )
}

/// The text naming a dimension value, `category=Libros, region=EU` (empty
/// without dimensions), as SQL over the dimension columns.
pub fn dimension_sql(dimensions: &[String]) -> String {
    if dimensions.is_empty() {
        return "''".to_string();
    }
    let parts: Vec<String> = dimensions
        .iter()
        .map(|d| format!("'{}=' || coalesce(cast({} as varchar), 'NULL')", d.replace('\'', "''"), quote(d)))
        .collect();
    parts.join(" || ', ' || ")
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(v: Json) -> Result<Monitor, String> {
        parse(v.as_object().unwrap(), "fct", None, None)
    }

    #[test]
    fn defaults_follow_the_method() {
        let m = parsed(json!({"metric": "sum(x)", "timestamp_column": "d"})).unwrap();
        assert_eq!(
            (m.bucket, m.method, m.training, m.detection, m.min_history),
            (Bucket::Day, Method::ZScore, 28, 1, 14)
        );
        let s = parsed(json!({"metric": "sum(x)", "timestamp_column": "d", "method": "seasonal"})).unwrap();
        assert_eq!((s.period, s.training, s.min_history), (7, 56, 28));
        let w = parsed(
            json!({"metric": "count(*)", "timestamp_column": "d", "training_period": {"period": "week", "count": 3}}),
        )
        .unwrap();
        assert_eq!(w.training, 21);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parsed(json!({"metric": "sum(x)", "timestamp_column": "d", "sensitivity": 2})).unwrap_err();
        assert!(e.contains("`sensitivity`") && e.contains("anomaly_sensitivity"), "{e}");
        let e = parsed(json!({"metric": "sum(x)", "timestamp_column": "d", "time_bucket": "month"})).unwrap_err();
        assert!(e.contains("month"), "{e}");
        assert!(parsed(json!({"timestamp_column": "d"})).unwrap_err().contains("metric"));
        let e = parsed(json!({"metric": "sum(x)", "timestamp_column": "d", "seasonality": "day_of_week"})).unwrap_err();
        assert!(e.contains("seasonal"), "{e}");
    }

    #[test]
    fn the_key_changes_with_what_the_values_depend_on() {
        let a = parsed(json!({"metric": "sum(x)", "timestamp_column": "d"})).unwrap();
        let b = parsed(json!({"metric": "sum(x)", "timestamp_column": "d", "anomaly_sensitivity": 2})).unwrap();
        let c = parsed(json!({"metric": "sum(y)", "timestamp_column": "d"})).unwrap();
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
    }
}
