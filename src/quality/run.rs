//! Runs assertions on the engine. Row-level checks on one relation share a
//! single scan; the others run one query each. Failing rows of a warning or
//! failure are sampled to Parquet.

use crate::storage::Warehouse;
use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use sha2::{Digest, Sha256};

use crate::compile::assertions::{Assertion, Status};
use crate::exec::Engine;
use crate::storage::publish;

/// How many failing rows a sample keeps.
pub const SAMPLE_ROWS: usize = 100;

/// The outcome of one assertion.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub assertion: Assertion,
    pub status: Status,
    pub scanned: u64,
    pub failing: u64,
    pub seconds: f64,
    pub message: String,
    /// Sample of failing rows, relative to the warehouse.
    pub sample: Option<String>,
    /// What a metric monitor computed and scored.
    pub findings: Option<std::sync::Arc<super::monitor::Findings>>,
}

impl Outcome {
    /// Returns failing rows as a percentage of scanned rows.
    pub fn failing_pct(&self) -> f64 {
        if self.scanned == 0 {
            0.0
        } else {
            self.failing as f64 * 100.0 / self.scanned as f64
        }
    }
}

/// Where failing-row samples go.
pub struct Samples<'a> {
    pub warehouse: &'a Warehouse,
    pub run_id: &'a str,
}

/// Runs `assertions` and returns their outcomes in the same order.
pub async fn run_all(engine: &Engine, assertions: &[Assertion], samples: Option<&Samples<'_>>) -> Vec<Outcome> {
    let mut counts: Vec<Option<Result<(u64, u64), String>>> = vec![None; assertions.len()];
    let mut seconds = vec![0.0; assertions.len()];
    let mut findings = vec![None; assertions.len()];

    // Metric monitors: scored buckets and anomalies stand for scanned and
    // failing rows, so thresholds and severity apply as to any check.
    for (i, a) in assertions.iter().enumerate() {
        let Some(m) = &a.monitor else { continue };
        let clock = Instant::now();
        let found = super::monitor::run(engine, a, m).await;
        counts[i] =
            Some(found.as_ref().map(|f| (f.scored().count() as u64, f.anomalies().len() as u64)).map_err(Clone::clone));
        findings[i] = found.ok().map(std::sync::Arc::new);
        seconds[i] = clock.elapsed().as_secs_f64();
    }

    // One scan per relation for every row-level check on it.
    let mut by_subject: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, a) in assertions.iter().enumerate() {
        if a.row_predicate.is_some() {
            by_subject.entry(subject_relation(a)).or_default().push(i);
        }
    }
    let mut row_counts: BTreeMap<String, Result<u64, String>> = BTreeMap::new();
    for (rel, idx) in &by_subject {
        let clock = Instant::now();
        let mut cols = vec!["count(*) as wh_rows".to_string()];
        for (k, i) in idx.iter().enumerate() {
            let a = &assertions[*i];
            let pred = a.row_predicate.as_deref().unwrap_or("false");
            match &a.filter {
                Some(w) => {
                    cols.push(format!("sum(case when ({w}) then 1 else 0 end) as s{k}"));
                    cols.push(format!("sum(case when ({w}) and ({pred}) then 1 else 0 end) as f{k}"));
                }
                None => {
                    cols.push(format!("count(*) as s{k}"));
                    cols.push(format!("sum(case when {pred} then 1 else 0 end) as f{k}"));
                }
            }
        }
        let sql = format!("select {} from {rel}", cols.join(", "));
        let result = single_row(engine, &sql).await;
        row_counts.insert(rel.clone(), result.as_ref().map(|v| v[0]).map_err(Clone::clone));
        let share = clock.elapsed().as_secs_f64() / idx.len() as f64;
        for (k, i) in idx.iter().enumerate() {
            seconds[*i] = share;
            counts[*i] = Some(match &result {
                Ok(values) => Ok((values[1 + 2 * k], values[2 + 2 * k])),
                Err(e) => Err(e.clone()),
            });
        }
    }

    // The rest: count failing rows, and rows scanned once per relation (the
    // combined scan above already counted its relation's rows).
    let mut scanned_cache: BTreeMap<String, Result<u64, String>> = row_counts;
    for (i, a) in assertions.iter().enumerate() {
        if counts[i].is_some() {
            continue;
        }
        let clock = Instant::now();
        let scoped = match &a.filter {
            Some(_) => format!("{} as t", scoped_relation(a)),
            None => subject_relation(a),
        };
        let scanned = match scanned_cache.get(&scoped) {
            Some(r) => r.clone(),
            None => {
                let r = single_row(engine, &format!("select count(*) from {scoped}")).await.map(|v| v[0]);
                scanned_cache.insert(scoped.clone(), r.clone());
                r
            }
        };
        let calc = a.fail_calc.as_deref().unwrap_or("count(*)");
        let failing =
            single_row(engine, &format!("select {calc} from ({}) as failing", a.failing_sql)).await.map(|v| v[0]);
        counts[i] = Some(scanned.and_then(|s| failing.map(|f| (s, f))));
        seconds[i] = clock.elapsed().as_secs_f64();
    }

    let mut out = Vec::with_capacity(assertions.len());
    for (i, a) in assertions.iter().enumerate() {
        let (status, scanned, failing, message) = match counts[i].take() {
            Some(Ok((s, f))) => {
                let status = a.judge(f, s);
                let msg = match (&a.monitor, &findings[i]) {
                    (Some(m), Some(found)) => super::monitor::message(m, found),
                    _ if status == Status::Pass => "pass".to_string(),
                    _ => format!("{f} failing of {s} rows"),
                };
                (status, s, f, msg)
            }
            Some(Err(e)) => (Status::Error, 0, 0, format!("the assertion's SQL failed: {e}")),
            None => (Status::Error, 0, 0, "not run".to_string()),
        };
        let mut sample = None;
        if let (Some(s), Status::Warn | Status::Fail) = (samples, status) {
            let clock = Instant::now();
            sample = match (&a.monitor, &findings[i]) {
                (Some(m), Some(found)) => match super::monitor::anomaly_batch(m, found) {
                    Some(batch) => write_batches(std::slice::from_ref(&batch), &batch.schema(), a, s).await,
                    None => None,
                },
                _ => write_sample(engine, a, s).await,
            };
            seconds[i] += clock.elapsed().as_secs_f64();
        }
        let findings = findings[i].take();
        out.push(Outcome {
            assertion: a.clone(),
            status,
            scanned,
            failing,
            seconds: seconds[i],
            message,
            sample,
            findings,
        });
    }
    out
}

/// Returns the relation an assertion checks, narrowed by its `where:`.
pub(super) fn scoped_relation(a: &Assertion) -> String {
    match &a.filter {
        Some(w) => format!("(select * from {} where {w})", subject_relation(a)),
        None => subject_relation(a),
    }
}

/// Returns the relation an assertion checks.
pub(super) fn subject_relation(a: &Assertion) -> String {
    match &a.subject {
        super::Subject::Model(m) => crate::compile::relation(m),
        super::Subject::Source(key) => {
            let (s, t) = key.split_once('.').unwrap_or((key, ""));
            crate::compile::source_relation(s, t)
        }
    }
}

/// Runs a query returning one row of integers.
async fn single_row(engine: &Engine, sql: &str) -> Result<Vec<u64>, String> {
    let (_, batches) = engine.query(sql).await.map_err(|e| e.to_string())?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(format!("no row from `{sql}`"));
    };
    batch
        .columns()
        .iter()
        .map(|c| {
            let c = cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
            let c = c.as_any().downcast_ref::<Int64Array>().ok_or("not an integer")?;
            Ok(if c.is_null(0) { 0 } else { c.value(0).max(0) as u64 })
        })
        .collect()
}

/// Returns an assertion's name as one file name: the name itself when it is
/// letters, digits, `_`, `-` and `.` (not leading), else those characters
/// kept, the rest `_`, and a hash of the name so that two names never share
/// a file. A name such as `../../x` cannot leave the run's folder.
fn file_name(name: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !name.is_empty() && !name.starts_with('.') && name.chars().all(keep) {
        return name.to_string();
    }
    let safe: String = name.chars().take(80).map(|c| if keep(c) { c } else { '_' }).collect();
    let digest: String = Sha256::digest(name.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{}-{digest}", safe.trim_start_matches('.'))
}

async fn write_sample(engine: &Engine, a: &Assertion, s: &Samples<'_>) -> Option<String> {
    let sql = format!("select * from ({}) as failing limit {SAMPLE_ROWS}", a.failing_sql);
    let (schema, batches) = engine.query(&sql).await.ok()?;
    write_batches(&batches, &schema, a, s).await
}

async fn write_batches(
    batches: &[datafusion::arrow::array::RecordBatch],
    schema: &datafusion::arrow::datatypes::SchemaRef,
    a: &Assertion,
    s: &Samples<'_>,
) -> Option<String> {
    let schema = publish::bi_schema(schema);
    let batches: Vec<_> = batches.iter().filter_map(|b| publish::to_bi(b, &schema).ok()).collect();
    let rel = format!("_wh/failures/{}/{}.parquet", s.run_id, file_name(&a.name));
    let staged = publish::stage(&batches, &schema, &s.warehouse.staging_path(&rel)).ok()?;
    s.warehouse.publish(&staged, &rel).await.ok()?;
    Some(rel)
}

#[cfg(test)]
mod file_name_tests {
    use super::file_name;

    #[test]
    fn assertion_names_become_one_file_name_inside_the_run_folder() {
        assert_eq!(file_name("unique_orders_order_id"), "unique_orders_order_id");
        for hostile in ["../../../etc/x", "a/b", ".hidden", "", "<img src=x>", "..", "c:\\x"] {
            let f = file_name(hostile);
            assert!(!f.contains('/') && !f.contains('\\') && !f.starts_with('.') && f.len() > 12, "{hostile} -> {f}");
        }
        assert_ne!(file_name("a/b"), file_name("a_b"));
        assert_ne!(file_name("a/b"), file_name("a\\b"));
    }
}
