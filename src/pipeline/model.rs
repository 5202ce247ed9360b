//! One model's phases: reuse or plan it, enforce its write policy, write it
//! (a staged Parquet file, or a Delta or partitioned table), check it (BI
//! types, contract, assertions) and publish it only when the checks pass.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::Schema;
use datafusion::prelude::DataFrame;

use super::audits::audit_verdict;
use super::staging::{Readable, Staging};
use super::{failure_of, finished, register_output, run_hooks};
use crate::compile::assertions::{Assertion, Status as TestStatus};
use crate::compile::CompiledModel;
use crate::diagnostic::Location;
use crate::exec::{Engine, ExecError, Mode};
use crate::project::config::{Export, Materialization};
use crate::quality::run::{run_all, Outcome, Samples};
use crate::results::{Failure, NodeResult, Status};
use crate::storage::{publish, Entry, Warehouse};

/// One model to run, with what its task needs.
pub(super) struct ModelJob {
    pub engine: Engine,
    pub model: CompiledModel,
    pub assertions: Vec<Assertion>,
    /// Run before it is built: a failure skips it.
    pub unit_tests: Vec<crate::compile::unit_tests::UnitTest>,
    pub warehouse: Warehouse,
    pub run_id: String,
    pub compiled_at: PathBuf,
    /// Its published version is up to date: read it instead of rebuilding.
    pub reuse: bool,
    pub full_refresh: bool,
    pub now: DateTime<Utc>,
    /// Enforced on its rows and columns when written.
    pub policy: crate::policy::WritePolicy,
    /// Why the policy cannot be enforced (fails the model).
    pub unmet: Option<String>,
    /// Where its table is staged for the build's publishing step.
    pub staging: Staging,
}

/// What writing a model leaves besides its result: the outcomes of its
/// assertions and the bytes its query spilled.
#[derive(Default)]
struct Written {
    outcomes: Vec<Outcome>,
    spilled: usize,
}

/// Rows and bytes published, or why not.
type Published = Result<(Option<usize>, Option<u64>), Failure>;

/// A planned table: its rows, and for an incremental build how many are new.
type Planned = Result<Option<(DataFrame, Option<usize>)>, ExecError>;

impl ModelJob {
    fn samples(&self) -> Samples<'_> {
        Samples { warehouse: &self.warehouse, run_id: &self.run_id }
    }

    async fn run_assertions(&self) -> Vec<Outcome> {
        run_all(&self.engine, &self.assertions, Some(&self.samples())).await
    }

    /// Runs the checks that come before publishing: the BI check's verdict,
    /// the contract, then the assertions.
    async fn audit(&self, compat: Result<(), Failure>, schema: &Schema, written: &mut Written) -> Result<(), Failure> {
        compat.and_then(|()| check_contract(&self.model, schema))?;
        self.post_hooks().await?;
        crate::failpoint::hit("model.before_assertions").map_err(|e| io_failure(&self.model, e))?;
        written.outcomes = self.run_assertions().await;
        audit_verdict(&written.outcomes)
    }

    /// Runs the model's post-hooks: its new version is registered under its
    /// name (`this`), not yet checked or published.
    async fn post_hooks(&self) -> Result<(), Failure> {
        run_hooks(&self.engine, "post-hook", &self.model.post_hooks, &self.model.path).await
    }
}

/// Runs one model: its unit tests, then stage, check the contract, audit,
/// publish. A failed unit test skips the model (and so its descendants).
pub(super) async fn run_model(job: ModelJob) -> NodeResult {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let units = crate::quality::unit::run_all(&job.engine, &job.unit_tests).await;
    let failed: Vec<&str> = units
        .iter()
        .filter(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error))
        .map(|o| o.assertion.name.as_str())
        .collect();
    if !failed.is_empty() {
        let mut r = finished(&job.model, Status::Skipped, started_at, clock, None, None, None);
        r.message =
            format!("skipped: unit test{} `{}` failed", if failed.len() > 1 { "s" } else { "" }, failed.join("`, `"));
        r.assertions = units;
        return r;
    }
    let mut r = run_tested(job).await;
    r.assertions.splice(0..0, units);
    r
}

/// Runs a model whose unit tests passed.
async fn run_tested(job: ModelJob) -> NodeResult {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let model = &job.model;
    if job.reuse && register_output(&job.engine, &job.warehouse, model).await.is_ok() {
        let mut r = finished(model, Status::Success, started_at, clock, None, None, None);
        r.reused = true;
        r.message = "up to date: same SQL, config, assertions, inputs and source files".into();
        // Its assertions run on the published version, so that every build
        // records the state of every selected model.
        r.assertions = job.run_assertions().await;
        return r;
    }
    if let Some(why) = &job.unmet {
        let f = Failure {
            message: why.clone(),
            location: model.props_at.clone().or_else(|| Some(Location::file(&model.path))),
            hint: Some("ref the consent model in the model's SQL, or remove the tag".into()),
        };
        return finished(model, Status::Error, started_at, clock, None, None, Some(f));
    }
    if let Err(f) = run_hooks(&job.engine, "pre-hook", &model.pre_hooks, &model.path).await {
        return finished(model, Status::Error, started_at, clock, None, None, Some(named(model, f)));
    }
    let mode = match model.output_path() {
        Some(rel) => Some(mode_of(&job.warehouse, model, job.full_refresh, &rel).await),
        None => None,
    };
    let planned = match mode {
        Some(mode) => enforce(&job, plan_table(&job.engine, &job.warehouse, model, mode, job.now).await).await,
        None => Ok(None),
    };
    if mode == Some(Mode::Incremental) && matches!(planned, Ok(None)) {
        // No new rows: the published table (registered for readers) stays.
        let rows = job.engine.row_count(&model.name).await.ok();
        let mut r = finished(model, Status::Success, started_at, clock, rows, None, None);
        r.merged = Some(0);
        r.message = "no new rows: the published table stays as it is".into();
        if let Err(f) = job.post_hooks().await {
            return finished(model, Status::Error, started_at, clock, None, None, Some(named(model, f)));
        }
        r.assertions = job.run_assertions().await;
        return r;
    }
    let merged = planned.as_ref().ok().and_then(|p| p.as_ref()).and_then(|(_, merged)| *merged);
    let mut written = Written::default();
    let published = write(&job, mode, planned, &mut written).await;
    let mut r = match published {
        Ok((rows, bytes)) => {
            let mut r = finished(model, Status::Success, started_at, clock, rows, bytes, None);
            r.merged = merged;
            r.spilled_bytes = written.spilled;
            if let (Some(rows), Some(new)) = (rows, merged) {
                r.message = format!("{rows} rows ({new} new rows merged into the published table)");
            }
            r
        }
        Err(f) => finished(model, Status::Error, started_at, clock, None, None, Some(named(model, f))),
    };
    r.assertions = written.outcomes;
    r
}

/// A model's failure, its message naming the model.
fn named(model: &CompiledModel, mut f: Failure) -> Failure {
    f.message = format!("model `{}` ({}) failed: {}", model.name, model.path.display(), f.message);
    f
}

/// Forgotten identifiers, consent and masks apply to whatever the SQL (or
/// a merge) returns.
async fn enforce(job: &ModelJob, planned: Planned) -> Planned {
    match planned {
        Ok(Some((df, merged))) if !job.policy.is_empty() => {
            match crate::policy::enforce::enforce(&job.engine, &job.policy, df).await {
                Ok(df) => Ok(Some((df, merged))),
                Err(e) => Err(crate::exec::runtime_error(e)),
            }
        }
        other => other,
    }
}

/// Writes the planned model the way its materialization says, publishing
/// it when its checks pass.
async fn write(job: &ModelJob, mode: Option<Mode>, planned: Planned, written: &mut Written) -> Published {
    let model = &job.model;
    // Errors in the incremental SQL point at its own compiled file.
    let compiled_at = match (mode, model.compiled_paths().1) {
        (Some(Mode::Incremental), Some(p)) => job.compiled_at.with_file_name(p.file_name().unwrap_or_default()),
        _ => job.compiled_at.clone(),
    };
    match (model.output_path(), planned) {
        (_, Err(e)) => {
            // Merge and snapshot errors concern the model's own file.
            let mut f = failure_of(&e, Some(&compiled_at));
            f.location = f.location.or_else(|| Some(Location::file(&model.path)));
            Err(f)
        }
        (Some(rel), Ok(Some((df, _)))) if model.is_delta() || model.is_partitioned_parquet() => {
            match job.engine.materialize(&model.name, df).await {
                Ok((schema, batches)) => write_files(job, &rel, schema, batches, written).await,
                Err(e) => Err(failure_of(&e, Some(&compiled_at))),
            }
        }
        (Some(rel), Ok(Some((df, _)))) => {
            match job.engine.stage_table(&model.name, df, &job.warehouse.staging_path(&rel)).await {
                Ok(out) => {
                    written.spilled = out.spilled_bytes;
                    if let Err(e) = merge_failpoint(mode) {
                        publish::discard(&out.staged);
                        return Err(io_failure(model, e));
                    }
                    write_parquet(job, &rel, out, written).await
                }
                Err(e) => Err(failure_of(&e, Some(&compiled_at))),
            }
        }
        _ => match job.engine.register_view(&model.name, &model.sql).await {
            Ok(()) => {
                job.post_hooks().await?;
                written.outcomes = job.run_assertions().await;
                audit_verdict(&written.outcomes).map(|()| (None, None))
            }
            Err(e) => Err(failure_of(&e, Some(&compiled_at))),
        },
    }
}

/// Checks and publishes a Delta or partitioned table from its batches.
async fn write_files(
    job: &ModelJob,
    rel: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
    written: &mut Written,
) -> Published {
    let (model, warehouse) = (&job.model, &job.warehouse);
    let problems = publish::schema_problems(&schema);
    let compat = match problems.is_empty() {
        true => Ok(()),
        false => Err(Failure {
            message: format!("the table would not open in every BI tool: {}", problems.join("; ")),
            location: Some(Location::file(&model.path)),
            hint: Some("cast the column in the SQL to a flat type".into()),
        }),
    };
    job.audit(compat, &schema, written).await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    let partition_by = &model.config.partition_by;
    if model.is_delta() {
        return commit_delta(job, rel, schema, batches).await.map(|()| (Some(rows), None));
    }
    let written = crate::exec::partitioned::publish(warehouse, rel, &job.run_id, &schema, &batches, partition_by)
        .await
        .map_err(|e| Failure {
            hint: matches!(e, crate::exec::partitioned::PartitionError::UnknownColumn { .. })
                .then(|| "`partition_by` names columns the model returns".to_string()),
            message: format!("cannot publish `{}`: {e}", warehouse.location(rel)),
            location: model.props_at.clone().or_else(|| Some(Location::file(&model.path))),
        })?;
    let pointer = format!("{rel}/{}", crate::exec::partitioned::POINTER);
    let entry =
        warehouse.stage_bytes(&pointer, written.pointer, &job.run_id).await.map_err(|e| io_failure(model, e))?;
    job.staging.add(&model.name, entry);
    job.staging.readable_at(&model.name, Readable::Folder(format!("{}/", warehouse.location(&written.folder))));
    Ok((Some(written.rows), Some(written.bytes)))
}

/// Commits a Delta table that passed its checks: Delta's own transaction
/// log makes it visible at once (it is not part of the build's step).
async fn commit_delta(
    job: &ModelJob,
    rel: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> Result<(), Failure> {
    let warehouse = &job.warehouse;
    let fail = |e: String| Failure {
        message: format!("cannot commit the Delta table `{}`: {e}", warehouse.location(rel)),
        location: None,
        hint: None,
    };
    crate::failpoint::hit("delta.before_commit").map_err(|e| fail(e.to_string()))?;
    warehouse
        .write_delta(rel, schema, batches, &job.model.config.partition_by)
        .await
        .map_err(|e| fail(e.to_string()))?;
    crate::failpoint::hit("delta.after_commit").map_err(|e| fail(e.to_string()))
}

/// The failpoint inside an incremental merge or a snapshot: its new
/// version is written, not yet checked or staged.
fn merge_failpoint(mode: Option<Mode>) -> std::io::Result<()> {
    match mode {
        Some(Mode::Incremental) => crate::failpoint::hit("incremental.merge"),
        Some(Mode::Snapshot { .. }) => crate::failpoint::hit("snapshot.merge"),
        _ => Ok(()),
    }
}

/// A failed write of the model's files.
fn io_failure(model: &CompiledModel, e: std::io::Error) -> Failure {
    Failure { message: format!("cannot write `{}`: {e}", model.name), location: None, hint: None }
}

/// Checks a staged Parquet file and publishes it; a file that is not
/// published is discarded.
async fn write_parquet(job: &ModelJob, rel: &str, out: crate::exec::TableOutput, written: &mut Written) -> Published {
    let compat = match publish::compatibility_problems(&out.staged.temp) {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(Failure {
            message: format!("the written file would not open in every BI tool: {}", problems.join("; ")),
            location: Some(Location::file(&job.model.path)),
            hint: Some("cast the column in the SQL to a flat, signed, microsecond or <= 18-digit type".into()),
        }),
        Err(e) => Err(failure_of(&ExecError::Io { path: out.staged.temp.clone(), source: e }, None)),
    };
    if let Err(f) = job.audit(compat, &out.schema, written).await {
        publish::discard(&out.staged);
        return Err(f);
    }
    publish_parquet(job, rel, &out.staged).await
}

/// Stages a file that passed its checks for the build's publishing step
/// (the models after it read the staged version), and its CSV export when
/// asked.
async fn publish_parquet(job: &ModelJob, rel: &str, staged: &publish::Staged) -> Published {
    let (warehouse, model) = (&job.warehouse, &job.model);
    let history = match &model.config.forecast {
        Some(spec) => match forecast_history(job, spec).await {
            Ok(entry) => Some(entry),
            Err(f) => {
                publish::discard(staged);
                return Err(f);
            }
        },
        None => None,
    };
    let (entry, readable) = match warehouse.stage_for_commit(staged, rel, &job.run_id).await {
        Ok(staged_at) => staged_at,
        Err(source) => {
            publish::discard(staged);
            return Err(failure_of(&ExecError::Io { path: warehouse.location(rel).into(), source }, None));
        }
    };
    job.staging.add(&model.name, entry);
    if let Some(h) = history {
        job.staging.add(&model.name, h);
    }
    job.staging.readable_at(&model.name, Readable::File(readable));
    if model.config.export == Some(Export::Csv) {
        export_csv(job, rel).await?;
    }
    Ok((Some(staged.rows), Some(staged.bytes)))
}

/// Stages a forecast model's forecasts as a file of the forecast history,
/// to be published with its table.
async fn forecast_history(job: &ModelJob, spec: &crate::project::config::ForecastSpec) -> Result<Entry, Failure> {
    use crate::quality::forecasts;
    let (engine, warehouse, name) = (&job.engine, &job.warehouse, &job.model.name);
    let stamp = job.now.format("%Y%m%dT%H%M%S%.6fZ");
    let rel = format!("{}/{stamp}_{}_{name}.parquet", forecasts::DIR, job.run_id);
    let fail = |message: String| Failure {
        message: format!("the forecast history `{}` failed: {message}", warehouse.location(&rel)),
        location: None,
        hint: None,
    };
    let sql = forecasts::history_sql(name, spec, &job.run_id, job.now.timestamp_micros());
    let (schema, batches) = engine.query(&sql).await.map_err(|e| fail(e.to_string()))?;
    let staged = publish::stage(&batches, &schema, &warehouse.staging_path(&rel)).map_err(|e| fail(e.to_string()))?;
    let result = warehouse.stage_for_commit(&staged, &rel, &job.run_id).await;
    if matches!(warehouse, Warehouse::Remote(_)) || result.is_err() {
        publish::discard(&staged);
    }
    result.map(|(entry, _)| entry).map_err(|e| fail(e.to_string()))
}

/// Decides how a table model's next version is computed.
async fn mode_of(warehouse: &Warehouse, model: &CompiledModel, full_refresh: bool, rel: &str) -> Mode {
    match model.config.materialized {
        Materialization::Incremental if !full_refresh && warehouse.exists(rel).await.unwrap_or(false) => {
            Mode::Incremental
        }
        // History cannot be rebuilt: --full-refresh leaves snapshots be, as in dbt.
        Materialization::Snapshot => Mode::Snapshot { previous: warehouse.exists(rel).await.unwrap_or(false) },
        _ => Mode::Full,
    }
}

/// Plans a table model's next version: from its SQL, or for an incremental
/// build or a snapshot from its published version (registered under its
/// name, which `{{ this }}` renders to) and its new rows.
async fn plan_table(
    engine: &Engine,
    warehouse: &Warehouse,
    model: &CompiledModel,
    mode: Mode,
    now: DateTime<Utc>,
) -> Planned {
    if matches!(mode, Mode::Incremental | Mode::Snapshot { previous: true }) {
        register_output(engine, warehouse, model).await?;
    }
    engine.plan_model(model, mode, now).await
}

/// Checks the model's contract (when enforced) against what it returned.
fn check_contract(model: &CompiledModel, schema: &Schema) -> Result<(), Failure> {
    crate::exec::contract::check(model, schema).map_err(|breach| Failure {
        message: breach.to_string(),
        location: Some(model.props_at.clone().unwrap_or_else(|| Location::file(&model.path))),
        hint: Some("declare the columns as the model returns them, or cast in the SQL to the declared types".into()),
    })
}

/// Stages the table as CSV beside its Parquet file.
async fn export_csv(job: &ModelJob, rel: &str) -> Result<(), Failure> {
    let (engine, warehouse, name) = (&job.engine, &job.warehouse, &job.model.name);
    let csv_rel = format!("{}.csv", rel.trim_end_matches(".parquet"));
    let fail = |message: String| Failure {
        message: format!("the CSV export `{}` failed: {message}", warehouse.location(&csv_rel)),
        location: None,
        hint: None,
    };
    let (_, batches) = engine.query(&format!("select * from \"{name}\"")).await.map_err(|e| fail(e.to_string()))?;
    let staged = publish::stage_csv(&batches, &warehouse.staging_path(&csv_rel)).map_err(|e| fail(e.to_string()))?;
    let result = warehouse.stage_for_commit(&staged, &csv_rel, &job.run_id).await;
    if matches!(warehouse, Warehouse::Remote(_)) || result.is_err() {
        publish::discard(&staged);
    }
    job.staging.add(name, result.map_err(|e| fail(e.to_string()))?.0);
    Ok(())
}
