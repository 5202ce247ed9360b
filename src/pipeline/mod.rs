//! Runs selected models in dependency order on the engine, up to `threads`
//! at once. A failed model skips its descendants; independent branches go
//! on. Unselected parents are read from the warehouse (tables) or planned
//! from their SQL (views, ephemerals). The [`scheduler`] owns which models
//! wait, are ready, or are done; [`model`] runs one model's phases.

mod audits;
mod memory;
mod model;
mod scheduler;
mod staging;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::task::{JoinError, JoinSet};

use crate::compile::assertions::{Assertion, Status as TestStatus, Subject};
use crate::compile::{Compiled, CompiledModel};
use crate::diagnostic::Location;
use crate::exec::{Engine, ExecError};
use crate::graph::Graph;
use crate::project::config::Hook;
use crate::quality::run::{run_all, Outcome, Samples};
use crate::results::{Failure, NodeResult, RunOutput, Status};
use crate::storage::Warehouse;
use audits::Audits;
use memory::InMemory;
use model::{run_model, ModelJob};
use scheduler::Scheduler;
use staging::Staging;

/// What a failed hook's error adds.
const HOOK_HINT: &str = "hooks run on wh's DataFusion session: CREATE [OR REPLACE] TABLE/VIEW, \
     INSERT INTO a table the session holds, SET datafusion.*; the rendered SQL is in the manifest";

/// Runs hooks of one kind (`pre-hook`, `on-run-start hook`, ...) in order
/// on the session; the first that fails is the failure, at the line the
/// hook was written on (else in `file`).
pub async fn run_hooks(engine: &Engine, kind: &str, hooks: &[Hook], file: &Path) -> Result<(), Failure> {
    for (i, hook) in hooks.iter().enumerate() {
        engine.execute(&hook.sql).await.map_err(|e| Failure {
            message: format!("{kind} {} of {} failed: {e}", i + 1, hooks.len()),
            location: Some(hook.at.clone().unwrap_or_else(|| Location::file(file))),
            hint: Some(e.hint().unwrap_or(HOOK_HINT).to_string()),
        })?;
    }
    Ok(())
}

/// Everything a run needs.
pub struct RunPlan<'a> {
    pub compiled: &'a Compiled,
    pub graph: &'a Graph,
    pub selected: &'a BTreeSet<String>,
    pub engine: Engine,
    /// Where tables are published.
    pub warehouse: Warehouse,
    /// Where compiled SQL was written (for error locations).
    pub compiled_dir: PathBuf,
    pub threads: usize,
    /// Run assertions (write-audit-publish); `wh run` does not.
    pub audit: bool,
    /// Run each model's unit tests before it (`wh build`, unless excluded
    /// with `--exclude test_type:unit`).
    pub unit_tests: bool,
    /// Names failing-row samples.
    pub run_id: String,
    /// Table models whose published version is up to date: registered from
    /// the warehouse instead of rebuilt.
    pub reuse: BTreeSet<String>,
    /// Sources past their freshness `error_after`, when the project skips
    /// their readers (`on-stale-source: skip`), with why.
    pub stale_sources: BTreeMap<String, String>,
    /// `--full-refresh`: incremental models are rebuilt from their SQL.
    pub full_refresh: bool,
    /// The invocation's start: the time snapshots record.
    pub now: DateTime<Utc>,
    /// What is enforced when each model is written (models without one are
    /// not listed).
    pub policies: BTreeMap<String, crate::policy::WritePolicy>,
}

/// What a run reports as it goes.
pub enum Event<'a> {
    /// A model started.
    Started(&'a str),
    /// A model finished, failed or was skipped.
    Finished(&'a NodeResult),
}

/// Runs the plan; calls `report` as each model starts, and as it finishes
/// or is skipped.
pub async fn run(plan: RunPlan<'_>, report: &mut dyn FnMut(Event)) -> RunOutput {
    let audits = match plan.audit {
        true => Audits::plan(plan.compiled, plan.graph, plan.selected),
        false => Audits::default(),
    };
    let upstream = upstream_of(&plan, &audits);
    let (mut blocked, mut other_assertions) = register_sources(&plan, &upstream).await;
    register_upstream(&plan, &upstream, &mut blocked).await;
    let mut scheduler = Scheduler::new(plan.graph, plan.selected, &audits);
    let staging = Staging::default();
    run_selected(&plan, &audits, &blocked, &mut scheduler, &staging, report).await;
    let mut results = scheduler.into_results();
    other_assertions.extend(run_deferred(&plan, &audits, &results).await);
    // The build's tables become visible together.
    staging.commit(&plan.warehouse, &plan.run_id, &mut results).await;
    RunOutput { models: results, other_assertions }
}

/// Why models cannot run: failed or stale sources, and unselected upstream
/// models that cannot be read.
#[derive(Default)]
struct Blocked {
    sources: BTreeMap<String, Failure>,
    models: BTreeMap<String, Failure>,
}

impl Blocked {
    /// Returns why a model cannot run because of a failed source or upstream.
    fn of(&self, model: &CompiledModel) -> Option<Failure> {
        model
            .sources
            .iter()
            .find_map(|s| self.sources.get(s).cloned())
            .or_else(|| model.refs.iter().find_map(|r| self.models.get(r).cloned()))
    }
}

fn samples<'a>(plan: &'a RunPlan<'_>) -> Samples<'a> {
    Samples { warehouse: &plan.warehouse, run_id: &plan.run_id }
}

/// Unselected ancestors needed as inputs: tables stop the walk, views and
/// ephemerals need their own parents.
fn upstream_of(plan: &RunPlan<'_>, audits: &Audits) -> BTreeSet<String> {
    let (compiled, selected) = (plan.compiled, plan.selected);
    let mut upstream: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = selected.iter().cloned().collect();
    for a in audits.by_model.values().flatten().chain(audits.deferred.iter()) {
        for d in a.depends_on.iter().filter(|d| !selected.contains(*d)) {
            if upstream.insert(d.clone()) && !compiled.models[d].config.materialized.writes_table() {
                stack.push(d.clone());
            }
        }
    }
    while let Some(m) = stack.pop() {
        for p in &plan.graph.parents[&m] {
            let inlined = !compiled.models[p].config.materialized.writes_table();
            if !selected.contains(p) && upstream.insert(p.clone()) && inlined {
                stack.push(p.clone());
            }
        }
    }
    upstream
}

/// Registers the sources the run reads and runs their assertions before
/// anything reads them; returns the sources that failed (or are stale) and
/// the assertions' outcomes.
async fn register_sources(plan: &RunPlan<'_>, upstream: &BTreeSet<String>) -> (Blocked, Vec<Outcome>) {
    let compiled = plan.compiled;
    let needs_sources = |m: &CompiledModel| {
        plan.selected.contains(&m.name) || (upstream.contains(&m.name) && !m.config.materialized.writes_table())
    };
    let sources: BTreeSet<&String> =
        compiled.models.values().filter(|m| needs_sources(m)).flat_map(|m| m.sources.iter()).collect();
    let mut blocked = Blocked { sources: stale_sources(plan), models: BTreeMap::new() };
    let mut checks: Vec<Assertion> = Vec::new();
    for key in sources {
        if let Err(e) = plan.engine.register_source(&compiled.sources[key]).await {
            blocked.sources.insert(key.clone(), failure_of(&e, None));
        } else if plan.audit {
            checks.extend(compiled.assertions.iter().filter(|a| a.subject == Subject::Source(key.clone())).cloned());
        }
    }
    let outcomes = run_all(&plan.engine, &checks, Some(&samples(plan))).await;
    for o in outcomes.iter().filter(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error)) {
        let key = o.assertion.subject.name().to_string();
        blocked.sources.entry(key.clone()).or_insert_with(|| Failure {
            message: format!("source `{key}` failed assertion `{}`: {}", o.assertion.name, o.message),
            location: Some(o.assertion.defined_at.clone()),
            hint: o.sample.as_ref().map(|p| format!("failing rows are sampled in {p}")),
        });
    }
    (blocked, outcomes)
}

/// Sources past their freshness `error_after` whose readers are skipped.
fn stale_sources(plan: &RunPlan<'_>) -> BTreeMap<String, Failure> {
    let failure = |key: &String, why: &String| Failure {
        message: format!("source `{key}` is stale: {why}"),
        location: plan.compiled.sources.get(key).map(|s| s.table.defined_at.clone()),
        hint: Some("refresh the source, or set `on-stale-source: warn` in wh_project.yml".into()),
    };
    plan.stale_sources.iter().map(|(key, why)| (key.clone(), failure(key, why))).collect()
}

/// Registers the unselected models the run reads: tables from the
/// warehouse, views and ephemerals from their SQL.
async fn register_upstream(plan: &RunPlan<'_>, upstream: &BTreeSet<String>, blocked: &mut Blocked) {
    for name in plan.graph.order().iter().filter(|n| upstream.contains(*n)) {
        let model = &plan.compiled.models[name];
        if let Some(f) = blocked.of(model) {
            blocked.models.insert(name.clone(), f);
            continue;
        }
        let result = match model.output_path() {
            Some(rel) if plan.warehouse.exists(&rel).await.unwrap_or(false) => {
                register_output(&plan.engine, &plan.warehouse, model).await
            }
            Some(rel) => Err(ExecError::Upstream {
                message: format!(
                    "upstream model `{name}` is not selected and has not been built (no `{rel}` in the warehouse)"
                ),
                hint: Some(format!("build it first, or select it too: --select +{name}")),
            }),
            None => plan.engine.register_view(name, &model.sql).await,
        };
        if let Err(e) = result {
            blocked.models.insert(name.clone(), failure_of(&e, Some(&compiled_location(&plan.compiled_dir, model))));
        }
    }
}

/// Runs the selected models as their inputs finish, up to `threads` at once.
async fn run_selected(
    plan: &RunPlan<'_>,
    audits: &Audits,
    blocked: &Blocked,
    scheduler: &mut Scheduler<'_>,
    staging: &Staging,
    report: &mut dyn FnMut(Event),
) {
    let mut memory = InMemory::new(scheduler, staging);
    let mut tasks: JoinSet<NodeResult> = JoinSet::new();
    let mut running: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    loop {
        while tasks.len() < plan.threads.max(1) {
            let Some(name) = scheduler.next_ready() else { break };
            let model = &plan.compiled.models[&name];
            if let Some(f) = blocked.of(model) {
                let r = finished(model, Status::Error, Utc::now(), Instant::now(), None, None, Some(f));
                report(Event::Finished(&r));
                fail(plan, scheduler, &mut memory, r, report).await;
                continue;
            }
            report(Event::Started(&name));
            let handle = tasks.spawn(run_model(job_for(plan, audits, model, staging)));
            running.insert(handle.id(), name);
        }
        let Some(joined) = tasks.join_next_with_id().await else { break };
        let r = match joined {
            Ok((_, r)) => r,
            Err(e) => crashed(&plan.compiled.models[&running[&e.id()]], &e),
        };
        report(Event::Finished(&r));
        if r.status != Status::Success {
            fail(plan, scheduler, &mut memory, r, report).await;
            continue;
        }
        // A table it built is held in memory for its readers; one it
        // reused is read from its file already.
        let held = if r.output_path.is_some() && !r.reused { vec![r.name.clone()] } else { Vec::new() };
        let name = r.name.clone();
        scheduler.succeeded(r);
        memory.settle(plan, scheduler, std::slice::from_ref(&name), &held).await;
    }
}

/// What a model's task needs.
fn job_for(plan: &RunPlan<'_>, audits: &Audits, model: &CompiledModel, staging: &Staging) -> ModelJob {
    let name = &model.name;
    let policy = plan.policies.get(name);
    ModelJob {
        engine: plan.engine.clone(),
        assertions: audits.by_model.get(name).cloned().unwrap_or_default(),
        unit_tests: match plan.unit_tests {
            true => plan.compiled.unit_tests.iter().filter(|t| t.model == *name).cloned().collect(),
            false => Vec::new(),
        },
        model: model.clone(),
        warehouse: plan.warehouse.clone(),
        run_id: plan.run_id.clone(),
        compiled_at: compiled_location(&plan.compiled_dir, model),
        // Hooks are asked for on every build: a model with hooks is rebuilt.
        reuse: plan.reuse.contains(name) && model.pre_hooks.is_empty() && model.post_hooks.is_empty(),
        full_refresh: plan.full_refresh,
        now: plan.now,
        policy: policy.cloned().unwrap_or_default(),
        unmet: policy.and_then(|p| crate::policy::unmet(model, p, &plan.graph.ancestors(name, None))),
        staging: staging.clone(),
    }
}

/// A panic inside the engine is a bug in wh or DataFusion: it fails this
/// model, and the run goes on.
fn crashed(model: &CompiledModel, e: &JoinError) -> NodeResult {
    let failure = Failure {
        message: format!("model `{}` crashed the engine: {e} (this is a bug; please report it)", model.name),
        location: None,
        hint: None,
    };
    finished(model, Status::Error, Utc::now(), Instant::now(), None, None, Some(failure))
}

/// Records a failed model and skips its descendants. Models that only
/// waited for it (or for one skipped) to run an assertion no longer wait:
/// those assertions read the previously published version instead.
async fn fail(
    plan: &RunPlan<'_>,
    scheduler: &mut Scheduler<'_>,
    memory: &mut InMemory,
    result: NodeResult,
    report: &mut dyn FnMut(Event),
) {
    let ended = scheduler.failed(result, plan.compiled, report);
    for name in &ended {
        if !scheduler.waited_on(name) {
            continue;
        }
        memory.register_current(plan, name).await;
        scheduler.release(name);
    }
    memory.settle(plan, scheduler, &ended, &[]).await;
}

/// Assertions that read a model built after their subject run last,
/// against what was published.
async fn run_deferred(plan: &RunPlan<'_>, audits: &Audits, results: &[NodeResult]) -> Vec<Outcome> {
    let ok: BTreeSet<&str> = results.iter().filter(|r| r.status == Status::Success).map(|r| r.name.as_str()).collect();
    let runnable: Vec<Assertion> = audits
        .deferred
        .iter()
        .filter(|a| {
            ok.contains(a.subject.name())
                && a.depends_on.iter().all(|d| ok.contains(d.as_str()) || !plan.selected.contains(d))
        })
        .cloned()
        .collect();
    run_all(&plan.engine, &runnable, Some(&samples(plan))).await
}

fn compiled_location(compiled_dir: &Path, model: &CompiledModel) -> PathBuf {
    compiled_dir.join(model.compiled_paths().0)
}

fn failure_of(err: &ExecError, compiled_file: Option<&Path>) -> Failure {
    let location = match err {
        ExecError::Sql { location: Some((line, col)), .. } => compiled_file.map(|f| Location::at(f, *line, *col)),
        ExecError::Sql { .. } | ExecError::Memory { .. } => compiled_file.map(Location::file),
        ExecError::Source { location, .. } => Some(location.clone()),
        _ => None,
    };
    Failure { message: err.to_string(), location, hint: err.hint().map(str::to_string) }
}

/// Registers a model's published output (a Parquet file or a Delta table)
/// as `model.name`.
pub async fn register_output(engine: &Engine, warehouse: &Warehouse, model: &CompiledModel) -> Result<(), ExecError> {
    let Some(rel) = model.output_path() else { return Ok(()) };
    if model.is_delta() {
        let provider = warehouse.delta_provider(&rel).await.map_err(|message| ExecError::Upstream {
            message: format!("cannot open the Delta table `{}`: {message}", warehouse.location(&rel)),
            hint: None,
        })?;
        engine.register_provider(&model.name, provider)
    } else if model.is_partitioned_parquet() {
        let Some(version) = crate::exec::partitioned::current_version(warehouse, &rel).await else {
            return Err(ExecError::Upstream {
                message: format!("`{}` has no published version", warehouse.location(&rel)),
                hint: Some(format!("build it first: wh build --select {}", model.name)),
            });
        };
        engine.register_published(&model.name, &format!("{}/", warehouse.location(&format!("{rel}/{version}")))).await
    } else {
        engine.register_published(&model.name, &warehouse.location(&rel)).await
    }
}

fn finished(
    model: &CompiledModel,
    status: Status,
    started_at: DateTime<Utc>,
    clock: Instant,
    rows: Option<usize>,
    bytes: Option<u64>,
    failure: Option<Failure>,
) -> NodeResult {
    let message = match (&failure, rows) {
        (Some(f), _) => f.message.clone(),
        (None, Some(r)) => format!("{r} rows"),
        (None, None) => format!("{} registered", model.config.materialized.as_str()),
    };
    NodeResult {
        name: model.name.clone(),
        unique_id: model.unique_id.clone(),
        materialized: model.config.materialized,
        status,
        rows,
        bytes,
        output_path: model.output_path(),
        started_at,
        completed_at: Utc::now(),
        seconds: clock.elapsed().as_secs_f64(),
        message,
        failure,
        assertions: Vec::new(),
        reused: false,
        merged: None,
        spilled_bytes: 0,
    }
}
