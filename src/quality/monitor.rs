//! Runs metric monitors (`metric_anomalies`): computes the metric for the
//! buckets the history does not hold yet, learns the expected band from
//! the training buckets, scores the latest complete buckets, and keeps
//! every computed bucket in an append-only metric history,
//! `warehouse/_wh/metrics/` (one Parquet file per run, like the assertion
//! history; `wh query "select * from wh_metric_history"`).
//!
//! A bucket without rows counts as 0 (a category that sold nothing that day
//! dropped to 0), from the first bucket its dimension value has data in.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};

use super::forecasts;
use super::history::RunInfo;
use super::run::Outcome;
use crate::compile::assertions::monitor::{bucket_sql, Direction, Known, Method, Monitor, Target};
use crate::compile::assertions::Assertion;
use crate::exec::{columns, Engine};
use crate::series;
use crate::storage::{publish, Warehouse};

/// The metric history folder inside a warehouse.
pub const DIR: &str = "_wh/metrics";
/// The metric history's table name in queries.
pub const TABLE: &str = "wh_metric_history";

/// The band a scored bucket was judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    /// Standard deviations from the expected value.
    pub score: f64,
    pub anomalous: bool,
    /// An anomaly that continues one found before (in this bucket or the
    /// one before it) and is not a quarter worse: not alerted again.
    pub ongoing: bool,
}

/// One bucket of one dimension value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub dimension: String,
    /// Microseconds since the epoch.
    pub bucket: i64,
    pub value: f64,
    /// Set on the scored (latest complete) buckets.
    pub verdict: Option<Verdict>,
}

/// What a monitor found in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Buckets computed in this run, and the scored ones, by dimension and
    /// bucket.
    pub points: Vec<Point>,
    /// Why nothing was scored, when nothing was.
    pub learning: Option<String>,
}

impl Findings {
    /// Returns the scored points.
    pub fn scored(&self) -> impl Iterator<Item = &Point> {
        self.points.iter().filter(|p| p.verdict.is_some())
    }

    /// Returns the anomalies, the largest score first.
    pub fn anomalies(&self) -> Vec<&Point> {
        let mut out: Vec<&Point> = self.scored().filter(|p| p.verdict.as_ref().is_some_and(|v| v.anomalous)).collect();
        let size = |p: &Point| p.verdict.as_ref().map(|v| v.score.abs()).unwrap_or(0.0);
        out.sort_by(|a, b| size(b).total_cmp(&size(a)).then(a.dimension.cmp(&b.dimension)));
        out
    }
}

/// Fills in each monitor's history from the warehouse and the time before
/// which buckets are complete (the `as_of_date` var's day, else `now`).
/// With `full_refresh` the history is ignored and every bucket computed.
pub async fn prepare(
    engine: &Engine,
    warehouse: &Warehouse,
    assertions: &mut [Assertion],
    now: DateTime<Utc>,
    full_refresh: bool,
) {
    if !assertions.iter().any(|a| a.monitor.is_some()) {
        return;
    }
    let mut loaded = load(engine, warehouse).await;
    if full_refresh {
        loaded.monitors.clear();
    }
    for a in assertions.iter_mut() {
        let Some(m) = a.monitor.as_mut() else { continue };
        let Recorded { values: history, flagged, .. } = loaded.monitors.remove(&m.key).unwrap_or_default();
        let forecasts = match &m.forecast_model {
            Some(model) => loaded.forecasts.get(model).map(|rows| forecasts::made_before(rows)).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let complete_before = match m.as_of {
            Some(day) => day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or(i64::MAX),
            None => now.timestamp_micros(),
        };
        let recompute_from =
            history.keys().map(|(_, b)| *b).max().map(|last| last - m.detection as i64 * m.bucket.micros());
        m.known = Arc::new(Known { history, complete_before, recompute_from, flagged, forecasts });
    }
}

/// One monitor's history: the latest value of each (dimension, bucket),
/// the score of those the latest verdict found anomalous, and the band of
/// the latest verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub values: BTreeMap<(String, i64), f64>,
    pub flagged: BTreeMap<(String, i64), f64>,
    pub bands: BTreeMap<(String, i64), (f64, f64, f64)>,
}

/// The metric history by monitor key, and the forecast history by model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub monitors: BTreeMap<String, Recorded>,
    pub forecasts: BTreeMap<String, Vec<forecasts::Made>>,
}

/// Reads the latest value and verdict of every (monitor, dimension,
/// bucket) in the metric history, and the forecast history; empty when
/// there is none or it cannot be read.
pub async fn load(engine: &Engine, warehouse: &Warehouse) -> Loaded {
    let forecasts = forecasts::load(engine, warehouse).await;
    let dir = format!("{DIR}/");
    if !warehouse.exists(&dir).await.unwrap_or(false)
        || engine.register_published(TABLE, &warehouse.location(&dir)).await.is_err()
    {
        return Loaded { monitors: BTreeMap::new(), forecasts };
    }
    let sql = format!(
        "select monitor_key, dimension, bucket_start, value, case when anomalous then score end as flagged, \
         expected, lower, upper from {TABLE} order by run_started_at, monitor_key, dimension, bucket_start"
    );
    let Ok((_, batches)) = engine.query(&sql).await else { return Loaded { monitors: BTreeMap::new(), forecasts } };
    let mut monitors: BTreeMap<String, Recorded> = BTreeMap::new();
    for b in &batches {
        let (Some(keys), Some(dims), Some(buckets)) = (columns::text(b, 0), columns::text(b, 1), columns::micros(b, 2))
        else {
            continue;
        };
        let [Some(values), Some(flags), Some(expected), Some(lower), Some(upper)] =
            [3, 4, 5, 6, 7].map(|i| columns::floats(b, i))
        else {
            continue;
        };
        for i in (0..b.num_rows()).filter(|i| !values.is_null(*i)) {
            let r = monitors.entry(keys.value(i).to_string()).or_default();
            let at = (dims.value(i).to_string(), buckets.value(i));
            r.values.insert(at.clone(), values.value(i));
            if !expected.is_null(i) {
                r.bands.insert(at.clone(), (expected.value(i), lower.value(i), upper.value(i)));
            }
            match flags.is_null(i) {
                true => r.flagged.remove(&at),
                false => r.flagged.insert(at, flags.value(i)),
            };
        }
    }
    Loaded { monitors, forecasts }
}

/// Computes the new buckets of `a`'s metric on the engine and scores them.
pub async fn run(engine: &Engine, a: &Assertion, m: &Monitor) -> Result<Findings, String> {
    let sql = bucket_sql(m, &super::run::scoped_relation(a), m.known.recompute_from);
    let (_, batches) = engine.query(&sql).await.map_err(|e| e.to_string())?;
    let mut fresh = Vec::new();
    for b in &batches {
        let (Some(buckets), Some(dims), Some(values)) =
            (columns::micros(b, 0), columns::text(b, 1), columns::floats(b, 2))
        else {
            return Err("the metric's buckets could not be read".into());
        };
        for i in (0..b.num_rows()).filter(|i| !buckets.is_null(*i)) {
            let value = if values.is_null(i) { 0.0 } else { values.value(i) };
            fresh.push((dims.value(i).to_string(), buckets.value(i), value));
        }
    }
    Ok(score(m, &fresh))
}

/// Scores the latest complete buckets of every dimension value against
/// the band learnt from the training buckets before them. `fresh` holds
/// the buckets computed in this run: (dimension, bucket, value).
pub fn score(m: &Monitor, fresh: &[(String, i64, f64)]) -> Findings {
    let series = series(m, fresh);
    let step = m.bucket.micros();
    let last = series.values().flat_map(|s| s.keys().copied()).filter(|b| b + step <= m.known.complete_before).max();
    let mut points: Vec<Point> =
        fresh.iter().map(|(d, b, v)| Point { dimension: d.clone(), bucket: *b, value: *v, verdict: None }).collect();
    let Some(last) = last else {
        let learning = Some("no complete bucket with rows yet".to_string());
        return Findings { points, learning };
    };
    let first_scored = last - (m.detection as i64 - 1) * step;
    let mut short = None;
    for (dim, values) in &series {
        let Some(&since) = values.keys().next() else { continue };
        for (b, band) in bands(m, dim, values, since, first_scored, last) {
            let band = match band {
                Ok(band) => band,
                Err(why) => {
                    short = Some(why);
                    continue;
                }
            };
            let value = values.get(&b).copied().unwrap_or(0.0);
            let mut verdict = judge(m, &band, value);
            verdict.ongoing = verdict.anomalous && ongoing(m, dim, b, verdict.score);
            let verdict = Some(verdict);
            match points.iter_mut().find(|p| p.dimension == *dim && p.bucket == b) {
                Some(p) => p.verdict = verdict,
                None => points.push(Point { dimension: dim.clone(), bucket: b, value, verdict }),
            }
        }
    }
    points.sort_by(|a, b| (&a.dimension, a.bucket).cmp(&(&b.dimension, b.bucket)));
    let learning = if points.iter().any(|p| p.verdict.is_some()) { None } else { short };
    Findings { points, learning }
}

/// Every dimension value's buckets: the history's before the recomputed
/// ones, then this run's.
fn series(m: &Monitor, fresh: &[(String, i64, f64)]) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    if let Some(from) = m.known.recompute_from {
        for ((dim, bucket), value) in m.known.history.range(..).filter(|((_, b), _)| *b < from) {
            out.entry(dim.clone()).or_default().insert(*bucket, *value);
        }
    }
    for (dim, bucket, value) in fresh {
        out.entry(dim.clone()).or_default().insert(*bucket, *value);
    }
    out
}

/// The training values for scoring bucket `b`: the `training` buckets
/// before the first scored one (not before the series' first), in the same
/// phase of the season as `b` for the seasonal method; empty buckets are 0.
fn training(m: &Monitor, values: &BTreeMap<i64, f64>, since: i64, first_scored: i64, b: i64) -> Vec<f64> {
    let step = m.bucket.micros();
    let start = (first_scored - m.training as i64 * step).max(since);
    let phase = |t: i64| t.div_euclid(step).rem_euclid(m.period as i64);
    (start..first_scored)
        .step_by(step as usize)
        .filter(|t| m.method != Method::Seasonal || phase(*t) == phase(b))
        .map(|t| values.get(&t).copied().unwrap_or(0.0))
        .collect()
}

/// Tells whether an anomaly of `score` in bucket `b` continues one an
/// earlier run found, in `b` or the bucket before, and is not a quarter
/// worse than it.
fn ongoing(m: &Monitor, dim: &str, b: i64, score: f64) -> bool {
    let before = [b, b - m.bucket.micros()].map(|t| m.known.flagged.get(&(dim.to_string(), t)).copied());
    before.iter().flatten().any(|s| score.abs() < s.abs() * 1.25)
}

/// Training values needed to score: `min_training_set_size` buckets, in
/// the same phase for the seasonal method.
fn needed(m: &Monitor) -> usize {
    match m.method {
        Method::ZScore | Method::Forecast => m.min_history.max(2),
        Method::Seasonal => m.min_history.div_ceil(m.period).max(2),
    }
}

/// What a bucket is judged against: the expected value, the band, and the
/// spread a score counts in (one standard deviation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub spread: f64,
}

/// The band of each scored bucket of one dimension value (from `since`,
/// its first bucket), or why it cannot be scored yet.
fn bands(
    m: &Monitor,
    dim: &str,
    values: &BTreeMap<i64, f64>,
    since: i64,
    first_scored: i64,
    last: i64,
) -> Vec<(i64, Result<Band, String>)> {
    let scored: Vec<i64> = (first_scored..=last).step_by(m.bucket.micros() as usize).filter(|b| *b >= since).collect();
    match (m.method, &m.forecast_model) {
        (Method::Forecast, Some(model)) => scored.into_iter().map(|b| (b, forecast_band(m, model, dim, b))).collect(),
        (Method::Forecast, None) => fitted_bands(m, values, since, first_scored, &scored),
        _ => scored.into_iter().map(|b| (b, stats_band(m, &training(m, values, since, first_scored, b)))).collect(),
    }
}

/// The mean ± sensitivity × standard deviation of `training`.
fn stats_band(m: &Monitor, training: &[f64]) -> Result<Band, String> {
    if training.len() < needed(m) {
        return Err(format!("learning: {} of {} training buckets so far", training.len(), needed(m)));
    }
    let n = training.len() as f64;
    let mean = training.iter().sum::<f64>() / n;
    let sd = (training.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let (lower, upper) = (mean - m.sensitivity * sd, mean + m.sensitivity * sd);
    Ok(Band { expected: mean, lower, upper, spread: sd })
}

/// `method: forecast` fitted here: one forecast from the training buckets
/// over the scored ones, its bounds at the level of ± sensitivity σ.
fn fitted_bands(
    m: &Monitor,
    values: &BTreeMap<i64, f64>,
    since: i64,
    first_scored: i64,
    scored: &[i64],
) -> Vec<(i64, Result<Band, String>)> {
    let step = m.bucket.micros();
    let train = training(m, values, since, first_scored, first_scored);
    let horizon = scored.last().map(|b| ((b - first_scored) / step) as usize + 1).unwrap_or(0);
    let fitted = match train.len() < needed(m) {
        true => Err(format!("learning: {} of {} training buckets so far", train.len(), needed(m))),
        false => series::forecast(&train, m.forecaster, m.period, horizon, series::level_of(m.sensitivity))
            .map_err(|e| e.to_string()),
    };
    let band = |b: i64| {
        let i = ((b - first_scored) / step) as usize;
        let f = fitted.as_ref().map_err(Clone::clone)?;
        Ok(band_of(f.point[i], f.lower[i], f.upper[i], m.sensitivity))
    };
    scored.iter().map(|b| (*b, band(*b))).collect()
}

/// What the forecast model forecast for bucket `b` before it began.
fn forecast_band(m: &Monitor, model: &str, dim: &str, b: i64) -> Result<Band, String> {
    match m.known.forecasts.get(&(dim.to_string(), b)) {
        Some(f) => Ok(band_of(f.point, f.lower, f.upper, series::z_of(f.level))),
        None => Err(format!("no forecast of `{model}` made before {} yet", bucket_text(m, b))),
    }
}

/// A band from a forecast whose bounds are ± `z` standard deviations.
fn band_of(point: f64, lower: f64, upper: f64, z: f64) -> Band {
    Band { expected: point, lower, upper, spread: ((upper - lower) / (2.0 * z)).max(0.0) }
}

/// The value a bucket must not fall below: the band's lower bound, or with
/// a forecast model the `target`.
fn floor(m: &Monitor, band: &Band) -> f64 {
    match (&m.forecast_model, m.target) {
        (Some(_), Target::Forecast) => band.expected,
        (Some(_), Target::Percent(p)) => band.expected * p / 100.0,
        (Some(_), Target::Value(v)) => v,
        _ => band.lower,
    }
}

/// Judges `value` against `band`.
fn judge(m: &Monitor, band: &Band, value: f64) -> Verdict {
    let Band { expected, lower, upper, spread } = *band;
    let spread = if spread > 0.0 { spread } else { (expected.abs() * 1e-9).max(1e-12) };
    let score = (value - expected) / spread;
    let change_pct =
        if expected != 0.0 { (value - expected) / expected.abs() * 100.0 } else { f64::INFINITY * score.signum() };
    let dropped = value < floor(m, band) && -change_pct >= m.min_change_pct.0;
    let spiked = value > upper && change_pct >= m.min_change_pct.1;
    let anomalous = match m.direction {
        Direction::Both => dropped || spiked,
        Direction::Drop => dropped,
        Direction::Spike => spiked,
    };
    Verdict { expected, lower, upper, score, anomalous, ongoing: false }
}

/// Returns the outcome's message: the worst anomaly in words, or how many
/// buckets were scored.
pub fn message(m: &Monitor, f: &Findings) -> String {
    if let Some(why) = &f.learning {
        return format!("{}: {why}", m.metric);
    }
    let scored = f.scored().count();
    let anomalies = f.anomalies();
    let Some(worst) = anomalies.first() else {
        return format!("{} within the expected band in {scored} scored bucket(s)", m.metric);
    };
    let v = worst.verdict.as_ref().expect("anomalies are scored");
    let pct = if v.expected != 0.0 { (worst.value - v.expected) / v.expected.abs() * 100.0 } else { 0.0 };
    let dim = if worst.dimension.is_empty() { String::new() } else { format!(" for {}", worst.dimension) };
    format!(
        "{}{dim} in the {} of {} was {}, {:.0}% {} the expected {} (band {} to {}, z = {:.1}); {} anomalous of {scored} scored bucket(s)",
        m.metric,
        m.bucket.as_str(),
        bucket_text(m, worst.bucket),
        amount(worst.value),
        pct.abs(),
        if worst.value < v.expected { "below" } else { "above" },
        amount(v.expected),
        amount(v.lower),
        amount(v.upper),
        v.score,
        anomalies.len(),
    )
}

/// Returns a bucket's start as a date, or a date and hour.
pub fn bucket_text(m: &Monitor, bucket: i64) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(bucket) else { return bucket.to_string() };
    match m.bucket {
        crate::compile::assertions::monitor::Bucket::Hour => t.format("%Y-%m-%d %H:00").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

fn amount(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Returns the anomalies (at most `limit`, the largest first) for alerts:
/// metric, dimension, bucket, actual, expected band and score.
pub fn anomalies_json(m: &Monitor, f: &Findings, limit: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = f
        .anomalies()
        .iter()
        .take(limit)
        .filter_map(|p| {
            let v = p.verdict.as_ref()?;
            Some(serde_json::json!({
                "metric": m.metric,
                "dimension": p.dimension,
                "bucket": bucket_text(m, p.bucket),
                "actual": p.value,
                "expected": v.expected,
                "lower": v.lower,
                "upper": v.upper,
                "score": v.score,
                "ongoing": v.ongoing,
            }))
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// One bucket of a chart: its value, the band the monitor learns for it
/// from the buckets before it (expected, lower, upper), and whether a run
/// found it anomalous.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    pub bucket: i64,
    pub value: f64,
    pub band: Option<(f64, f64, f64)>,
    pub flagged: bool,
}

/// A dimension value's recent buckets, for a chart, and the forecast
/// ahead of them: (bucket, expected, lower, upper).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    pub dimension: String,
    pub points: Vec<ChartPoint>,
    pub ahead: Vec<(i64, f64, f64, f64)>,
}

/// Returns the last `window` buckets of at most `max_series` dimension
/// values (the largest by their last value first), each with the band the
/// monitor's method gives it from the buckets before it.
pub fn chart_series(m: &Monitor, loaded: &Loaded, window: usize, max_series: usize) -> Vec<ChartSeries> {
    let Some(recorded) = loaded.monitors.get(&m.key) else { return Vec::new() };
    let (values, flagged) = (&recorded.values, &recorded.flagged);
    let ahead = match &m.forecast_model {
        Some(model) => loaded.forecasts.get(model).map(|rows| forecasts::latest(rows)).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let mut series: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((dim, bucket), v) in values {
        series.entry(dim.as_str()).or_default().insert(*bucket, *v);
    }
    let step = m.bucket.micros();
    // The chart ends with the last bucket a run judged (later ones were
    // not complete then), or the last one when none was judged yet.
    let judged = recorded.bands.keys().map(|(_, b)| *b).max();
    let newest = series.values().filter_map(|s| s.keys().next_back().copied()).max();
    let Some(last) = judged.or(newest) else { return Vec::new() };
    let first = last - (window.max(1) as i64 - 1) * step;
    let mut out: Vec<ChartSeries> = series
        .iter()
        .map(|(dim, s)| {
            let since = s.keys().next().copied().unwrap_or(last);
            let points = (first.max(since)..=last)
                .step_by(step as usize)
                .map(|b| {
                    let at = (dim.to_string(), b);
                    let band = match m.method {
                        // A forecast's band is the one each run judged by.
                        Method::Forecast => recorded.bands.get(&at).copied(),
                        _ => stats_band(m, &training(m, s, since, b, b)).ok().map(|v| (v.expected, v.lower, v.upper)),
                    };
                    let flagged = flagged.contains_key(&at);
                    ChartPoint { bucket: b, value: s.get(&b).copied().unwrap_or(0.0), band, flagged }
                })
                .collect();
            let ahead = ahead.get(*dim).map(|rows| {
                rows.iter().filter(|(b, _)| *b > last).map(|(b, f)| (*b, f.point, f.lower, f.upper)).collect()
            });
            ChartSeries { dimension: dim.to_string(), points, ahead: ahead.unwrap_or_default() }
        })
        .collect();
    let size = |c: &ChartSeries| c.points.last().map(|p| p.value).unwrap_or(0.0);
    out.sort_by(|a, b| size(b).total_cmp(&size(a)).then(a.dimension.cmp(&b.dimension)));
    out.truncate(max_series);
    out
}

/// Tells whether every anomaly an outcome found goes on from an earlier
/// run without worsening (false for an outcome that is not a monitor's).
pub fn only_ongoing(o: &Outcome) -> bool {
    let Some(f) = &o.findings else { return false };
    let anomalies = f.anomalies();
    !anomalies.is_empty() && anomalies.iter().all(|p| p.verdict.as_ref().is_some_and(|v| v.ongoing))
}

/// Appends the buckets every monitor computed in this run as one file of
/// the metric history; returns its location (None when there is nothing).
pub async fn append(
    warehouse: &Warehouse,
    run: &RunInfo<'_>,
    outcomes: &[&Outcome],
) -> std::io::Result<Option<String>> {
    let rows: Vec<(&Outcome, &Monitor, &Point)> = outcomes
        .iter()
        .filter_map(|o| Some((*o, o.assertion.monitor.as_deref()?, o.findings.as_deref()?)))
        .flat_map(|(o, m, f)| f.points.iter().map(move |p| (o, m, p)))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let batch = history_batch(run, &rows).map_err(std::io::Error::other)?;
    let stamp = run.started_at.format("%Y%m%dT%H%M%S%.6fZ");
    let rel = format!("{DIR}/{stamp}_{}.parquet", run.run_id);
    let staged = publish::stage(std::slice::from_ref(&batch), &batch.schema(), &warehouse.staging_path(&rel))?;
    warehouse.publish(&staged, &rel).await?;
    Ok(Some(warehouse.location(&rel)))
}

type Row<'a> = (&'a Outcome, &'a Monitor, &'a Point);

fn history_batch(run: &RunInfo<'_>, rows: &[Row<'_>]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let n = rows.len();
    let text =
        |f: &dyn Fn(&Row<'_>) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let verdict = |f: &dyn Fn(&Verdict) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2.verdict.as_ref().map(f))))
    };
    let flag = |f: &dyn Fn(&Verdict) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.2.verdict.as_ref().map(f))))
    };
    let utc = |values: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("run_id", text(&|_| run.run_id.to_string())),
        ("run_started_at", utc(vec![run.started_at.timestamp_micros(); n])),
        ("test_name", text(&|r| r.0.assertion.name.clone())),
        ("subject", text(&|r| r.0.assertion.subject.name().to_string())),
        ("monitor_key", text(&|r| r.1.key.clone())),
        ("metric", text(&|r| r.1.metric.clone())),
        ("method", text(&|r| r.1.method.as_str().to_string())),
        ("time_bucket", text(&|r| r.1.bucket.as_str().to_string())),
        ("dimension", text(&|r| r.2.dimension.clone())),
        ("bucket_start", utc(rows.iter().map(|r| r.2.bucket).collect())),
        ("value", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2.value)))),
        ("expected", verdict(&|v| v.expected)),
        ("lower", verdict(&|v| v.lower)),
        ("upper", verdict(&|v| v.upper)),
        ("score", verdict(&|v| v.score)),
        ("anomalous", flag(&|v| v.anomalous)),
        ("ongoing", flag(&|v| v.ongoing)),
    ];
    let fields: Vec<Field> = columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
}

/// Returns the anomalies as rows for the failing-row sample: dimension,
/// bucket, actual, expected, lower, upper, score.
pub fn anomaly_batch(m: &Monitor, f: &Findings) -> Option<RecordBatch> {
    let rows = f.anomalies();
    let verdict = |g: &dyn Fn(&Verdict) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().filter_map(|p| p.verdict.as_ref().map(g))))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("dimension", Arc::new(StringArray::from_iter_values(rows.iter().map(|p| p.dimension.as_str())))),
        ("bucket", Arc::new(StringArray::from_iter_values(rows.iter().map(|p| bucket_text(m, p.bucket))))),
        ("actual", Arc::new(Float64Array::from_iter_values(rows.iter().map(|p| p.value)))),
        ("expected", verdict(&|v| v.expected)),
        ("lower", verdict(&|v| v.lower)),
        ("upper", verdict(&|v| v.upper)),
        ("score", verdict(&|v| v.score)),
    ];
    let fields: Vec<Field> = columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::assertions::monitor::parse;
    use serde_json::json;

    const DAY: i64 = 86_400_000_000;

    fn monitor(extra: serde_json::Value) -> Monitor {
        let mut params = json!({"metric": "sum(x)", "timestamp_column": "d"});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut m = parse(params.as_object().unwrap(), "fct", None, None).unwrap();
        m.known = Arc::new(Known { complete_before: i64::MAX, ..Known::default() });
        m
    }

    #[test]
    fn a_drop_outside_the_band_is_found_with_its_band() {
        let m = monitor(json!({"training_period": 4, "min_training_set_size": 4}));
        let values = [10.0, 12.0, 10.0, 12.0, 3.0];
        let fresh: Vec<_> = values.iter().enumerate().map(|(i, v)| (String::new(), i as i64 * DAY, *v)).collect();
        let f = score(&m, &fresh);
        let v = f.points[4].verdict.clone().unwrap();
        // mean 11, sample sd sqrt(4/3)
        let sd = (4.0f64 / 3.0).sqrt();
        assert_eq!(v.expected, 11.0);
        assert!((v.lower - (11.0 - 3.0 * sd)).abs() < 1e-12 && (v.upper - (11.0 + 3.0 * sd)).abs() < 1e-12);
        assert!(v.anomalous && (v.score - (3.0 - 11.0) / sd).abs() < 1e-12);
        assert_eq!(f.scored().count(), 1);
        let msg = message(&m, &f);
        assert!(msg.contains("1970-01-05 was 3, 73% below the expected 11"), "{msg}");
    }

    #[test]
    fn the_seasonal_method_compares_a_bucket_with_its_own_weekday() {
        // Sundays sell 1, other days 10: a Sunday of 1 is normal for
        // `seasonal` and a drop for `zscore` at sensitivity 1.
        let week = [10.0, 10.0, 10.0, 11.0, 9.0, 10.0, 1.0];
        let days: Vec<f64> = (0..35).map(|i| week[i % 7] + (i / 7) as f64 * 0.1).collect();
        let fresh: Vec<_> = days.iter().enumerate().map(|(i, v)| (String::new(), i as i64 * DAY, *v)).collect();
        let seasonal = monitor(json!({"method": "seasonal", "training_period": 28, "min_training_set_size": 28}));
        let f = score(&seasonal, &fresh);
        assert_eq!(f.anomalies().len(), 0, "{:?}", f.points.last());
        let z = monitor(json!({"training_period": 28, "min_training_set_size": 28, "anomaly_sensitivity": 1}));
        assert_eq!(score(&z, &fresh).anomalies().len(), 1);
    }

    #[test]
    fn direction_small_changes_and_short_history_hold_back_verdicts() {
        let fresh: Vec<_> = [10.0, 11.0, 10.0, 11.0, 30.0]
            .iter()
            .enumerate()
            .map(|(i, v)| ("category=A".to_string(), i as i64 * DAY, *v))
            .collect();
        let drop_only = monitor(json!({"training_period": 4, "min_training_set_size": 4, "anomaly_direction": "drop"}));
        assert!(score(&drop_only, &fresh).anomalies().is_empty());
        let both = monitor(json!({"training_period": 4, "min_training_set_size": 4}));
        assert_eq!(score(&both, &fresh).anomalies().len(), 1);
        let big = json!({"training_period": 4, "min_training_set_size": 4,
            "ignore_small_changes": {"spike_failure_percent_threshold": 200}});
        assert!(score(&monitor(big), &fresh).anomalies().is_empty());
        let f = score(&monitor(json!({"min_training_set_size": 10})), &fresh);
        assert!(f.anomalies().is_empty() && f.learning.as_deref().unwrap().contains("4 of 10"));
    }

    #[test]
    fn an_empty_bucket_counts_as_zero_and_incomplete_buckets_wait() {
        let mut m = monitor(json!({"training_period": 4, "min_training_set_size": 4}));
        let mut fresh: Vec<_> = (0..5).map(|i| ("c=A".to_string(), i * DAY, 10.0 + (i % 2) as f64)).collect();
        fresh.push(("c=B".into(), 5 * DAY, 5.0));
        let f = score(&m, &fresh);
        let gone = f.points.iter().find(|p| p.dimension == "c=A" && p.bucket == 5 * DAY).unwrap();
        assert!(gone.value == 0.0 && gone.verdict.as_ref().unwrap().anomalous);
        m.known = Arc::new(Known { complete_before: 5 * DAY + 1, ..Known::default() });
        let scored: Vec<_> = score(&m, &fresh).scored().map(|p| (p.dimension.clone(), p.bucket)).collect();
        assert_eq!(scored, vec![("c=A".to_string(), 4 * DAY)], "the day still running is not scored");
    }

    #[test]
    fn history_before_the_recomputed_buckets_trains_the_band() {
        let mut m = monitor(json!({"training_period": 4, "min_training_set_size": 4}));
        let history = (0..4).map(|i| ((String::new(), i * DAY), 10.0 + (i % 2) as f64 * 2.0)).collect();
        m.known =
            Arc::new(Known { history, complete_before: i64::MAX, recompute_from: Some(4 * DAY), ..Known::default() });
        let f = score(&m, &[(String::new(), 4 * DAY, 3.0)]);
        assert_eq!(f.points.len(), 1);
        assert_eq!(f.points[0].verdict.as_ref().unwrap().expected, 11.0);
    }

    #[test]
    fn an_anomaly_that_goes_on_is_ongoing_until_it_worsens() {
        let history: BTreeMap<_, _> = (0..4).map(|i| ((String::new(), i * DAY), 10.0 + (i % 2) as f64 * 2.0)).collect();
        let verdict = |value: f64, flagged_score: f64| {
            let mut m = monitor(json!({"training_period": 4, "min_training_set_size": 4}));
            let flagged = [((String::new(), 3 * DAY), flagged_score)].into_iter().collect();
            let known = Known {
                history: history.clone(),
                complete_before: i64::MAX,
                recompute_from: Some(4 * DAY),
                flagged,
                ..Known::default()
            };
            m.known = Arc::new(known);
            score(&m, &[(String::new(), 4 * DAY, value)]).points[0].verdict.clone().unwrap()
        };
        let same = verdict(3.0, -7.0);
        assert!(same.anomalous && same.ongoing, "{same:?}");
        let worse = verdict(-20.0, -7.0);
        assert!(worse.anomalous && !worse.ongoing, "{worse:?}");
    }
}
