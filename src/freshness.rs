//! Source freshness, as dbt's: for each source table with a `freshness`
//! block and a `loaded_at_field`, the newest value of that field compared
//! with now, against `warn_after` and `error_after`
//! (`{count: 12, period: minute|hour|day}`), with an optional `filter`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value as Json};

use crate::compile::{source_relation, Compiled};
use crate::exec::Engine;
use crate::project::config::{FreshnessAfter, FreshnessDef};

/// How fresh a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshStatus {
    Pass,
    Warn,
    Error,
    /// The freshness query failed.
    RuntimeError,
}

impl FreshStatus {
    /// Returns dbt's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            FreshStatus::Pass => "pass",
            FreshStatus::Warn => "warn",
            FreshStatus::Error => "error",
            FreshStatus::RuntimeError => "runtime error",
        }
    }
}

/// One source table's freshness.
#[derive(Debug, Clone)]
pub struct Freshness {
    pub source: String,
    pub unique_id: String,
    pub status: FreshStatus,
    /// Seconds since the newest `loaded_at_field` value.
    pub age_s: Option<f64>,
    /// The newest `loaded_at_field` value.
    pub max_loaded_at: Option<DateTime<Utc>>,
    pub criteria: FreshnessDef,
    pub message: String,
    /// When its query started and ended.
    pub timing: (DateTime<Utc>, DateTime<Utc>),
}

/// Checks every source table that declares freshness; the engine must
/// have the sources registered (unregistered ones are runtime errors).
pub async fn check(engine: &Engine, compiled: &Compiled) -> Vec<Freshness> {
    let mut out = Vec::new();
    for (key, s) in &compiled.sources {
        let (Some(criteria), Some(field)) = (&s.table.freshness, &s.table.loaded_at_field) else { continue };
        let filter = criteria.filter.as_ref().map(|f| format!(" where {f}")).unwrap_or_default();
        let sql = format!(
            "select date_part('epoch', max(cast({field} as timestamp))) as newest from {}{filter}",
            source_relation(&s.table.source, &s.table.name)
        );
        let started = Utc::now();
        let mut f = Freshness {
            source: key.clone(),
            unique_id: s.unique_id.clone(),
            status: FreshStatus::RuntimeError,
            age_s: None,
            max_loaded_at: None,
            criteria: criteria.clone(),
            message: String::new(),
            timing: (started, started),
        };
        match engine.query(&sql).await {
            Err(e) => f.message = format!("freshness query failed: {e}"),
            Ok((_, batches)) => match newest(&batches) {
                // As dbt: no value to judge by is a runtime error.
                None => f.message = format!("no `{field}` value: the table is empty"),
                Some(t) => judge(&mut f, field, t),
            },
        }
        f.timing.1 = Utc::now();
        out.push(f);
    }
    out
}

/// The query's one value, as seconds since the epoch.
fn newest(batches: &[datafusion::arrow::array::RecordBatch]) -> Option<f64> {
    use datafusion::arrow::array::{Array, Float64Array};
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let c = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Float64).ok()?;
    let c = c.as_any().downcast_ref::<Float64Array>()?;
    (!c.is_null(0)).then(|| c.value(0))
}

/// Sets the status of `f` from the age of its newest value `t`.
fn judge(f: &mut Freshness, field: &str, t: f64) {
    let now = Utc::now().timestamp_micros() as f64 / 1e6;
    let age = now - t;
    f.age_s = Some(age);
    f.max_loaded_at = DateTime::from_timestamp_micros((t * 1e6) as i64);
    let over = |t: &Option<FreshnessAfter>| t.is_some_and(|t| age > t.seconds());
    f.status = if over(&f.criteria.error_after) {
        FreshStatus::Error
    } else if over(&f.criteria.warn_after) {
        FreshStatus::Warn
    } else {
        FreshStatus::Pass
    };
    f.message = format!("newest `{field}` is {} old", human(age));
}

/// Formats seconds as `3d 4h`, `5h 12m` or `42m`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Returns dbt's `sources.json` (v3) for the results: a runtime error in
/// dbt's short form (its message as `error`); wh's message of a judged
/// source in `adapter_response`, the schema's one open map.
pub fn artifact(results: &[Freshness], invocation_id: &str, elapsed: f64) -> Json {
    let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let now = ts(&Utc::now());
    let result = |f: &Freshness| match (f.age_s, f.max_loaded_at) {
        (Some(age), Some(newest)) => json!({
            "unique_id": f.unique_id,
            "status": f.status.as_str(),
            "max_loaded_at": ts(&newest),
            "snapshotted_at": now,
            "max_loaded_at_time_ago_in_s": age,
            "criteria": f.criteria,
            "adapter_response": { "message": f.message },
            "timing": [{ "name": "execute", "started_at": ts(&f.timing.0), "completed_at": ts(&f.timing.1) }],
            "thread_id": "main",
            "execution_time": (f.timing.1 - f.timing.0).as_seconds_f64(),
        }),
        _ => json!({ "unique_id": f.unique_id, "status": "runtime error", "error": f.message }),
    };
    json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
            "env": { "WH_VERSION": env!("CARGO_PKG_VERSION") },
            "generated_at": now,
            "invocation_id": invocation_id,
        },
        "results": results.iter().map(result).collect::<Vec<_>>(),
        "elapsed_time": elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_ages() {
        use crate::project::config::FreshnessPeriod;
        assert_eq!(FreshnessAfter { count: 12, period: FreshnessPeriod::Hour }.seconds(), 43200.0);
        assert_eq!(FreshnessAfter { count: 2, period: FreshnessPeriod::Day }.seconds(), 172800.0);
        assert_eq!(human(90.0), "1m");
        assert_eq!(human(3.0 * 3600.0 + 120.0), "3h 2m");
        assert_eq!(human(2.0 * 86400.0 + 3600.0), "2d 1h");
    }
}
