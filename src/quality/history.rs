//! The append-only history of assertion outcomes: one Parquet file per run
//! under `warehouse/_wh/test_results/`, never rewritten. Readers see the
//! folder as one table (`wh query "select * from wh_test_results"`, or
//! DuckDB's `read_parquet('warehouse/_wh/test_results/*.parquet',
//! union_by_name = true)`); columns are only ever added, so older files stay
//! readable, with NULL in columns they predate.

use crate::storage::Warehouse;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, Value as Json};

use super::run::Outcome;
use super::Subject;
use crate::storage::publish;

/// The history folder inside a warehouse.
pub const DIR: &str = "_wh/test_results";

/// Tells who answers for a subject: `(owner, steward)`.
pub type Owners<'a> = dyn Fn(&Subject) -> (Option<String>, Option<String>) + 'a;

/// Facts about the run that produced the outcomes.
pub struct RunInfo<'a> {
    pub run_id: &'a str,
    pub started_at: DateTime<Utc>,
    pub target: &'a str,
    pub command: &'a str,
}

/// Appends `outcomes` as a new file; returns its location (None when there
/// is nothing to record).
pub async fn append(
    warehouse: &Warehouse,
    run: &RunInfo<'_>,
    outcomes: &[&Outcome],
    owners: &Owners<'_>,
) -> std::io::Result<Option<String>> {
    if outcomes.is_empty() {
        return Ok(None);
    }
    let n = outcomes.len();
    let text = |f: &dyn Fn(&&Outcome) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(outcomes.iter().map(f).collect::<Vec<_>>()))
    };
    let same = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![Some(s.to_string()); n])) };
    let params = |o: &&Outcome| Some(Json::Object(o.assertion.params.clone()).to_string());
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("run_id", same(run.run_id)),
        (
            "run_started_at",
            Arc::new(TimestampMicrosecondArray::from(vec![run.started_at.timestamp_micros(); n]).with_timezone("UTC")),
        ),
        ("target", same(run.target)),
        ("command", same(run.command)),
        ("test_id", text(&|o| Some(o.assertion.unique_id.clone()))),
        ("test_name", text(&|o| Some(o.assertion.name.clone()))),
        ("assertion", text(&|o| Some(o.assertion.kind.clone()))),
        (
            "subject_type",
            text(&|o| {
                Some(matches!(o.assertion.subject, Subject::Model(_)).then_some("model").unwrap_or("source").into())
            }),
        ),
        ("subject", text(&|o| Some(o.assertion.subject.name().to_string()))),
        ("column_name", text(&|o| o.assertion.column.clone())),
        ("parameters", text(&params)),
        ("filter", text(&|o| o.assertion.filter.clone())),
        ("severity", text(&|o| Some(o.assertion.severity.as_str().into()))),
        ("threshold", text(&|o| Some(o.assertion.threshold_text()))),
        ("rows_scanned", Arc::new(Int64Array::from_iter_values(outcomes.iter().map(|o| o.scanned as i64)))),
        ("failing_rows", Arc::new(Int64Array::from_iter_values(outcomes.iter().map(|o| o.failing as i64)))),
        ("failing_pct", Arc::new(Float64Array::from_iter_values(outcomes.iter().map(|o| o.failing_pct())))),
        ("status", text(&|o| Some(o.status.as_str().into()))),
        ("duration_s", Arc::new(Float64Array::from_iter_values(outcomes.iter().map(|o| o.seconds)))),
        ("owner", text(&|o| owners(&o.assertion.subject).0)),
        ("steward", text(&|o| owners(&o.assertion.subject).1)),
        ("sample_path", text(&|o| o.sample.clone())),
        ("message", text(&|o| Some(o.message.clone()))),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| {
            let dt = match a.data_type() {
                DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                other => other.clone(),
            };
            Field::new(*name, dt, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(std::io::Error::other)?;
    let stamp = run.started_at.format("%Y%m%dT%H%M%S%.6fZ");
    let rel = format!("{DIR}/{stamp}_{}.parquet", run.run_id);
    let staged = publish::stage(&[batch], &schema, &warehouse.staging_path(&rel))?;
    crate::failpoint::hit("history.write").inspect_err(|_| publish::discard(&staged))?;
    warehouse.publish(&staged, &rel).await?;
    Ok(Some(warehouse.location(&rel)))
}

/// Reads `owner` and `steward` from a meta mapping.
pub fn owners_from_meta(meta: &Map<String, Json>) -> (Option<String>, Option<String>) {
    let get = |k: &str| meta.get(k).and_then(Json::as_str).map(str::to_string);
    (get("owner"), get("steward"))
}
