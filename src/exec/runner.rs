//! Runs selected models in dependency order on the engine, up to `threads`
//! at once. A failed model skips its descendants; independent branches go
//! on. Unselected parents are read from the warehouse (tables) or planned
//! from their SQL (views, ephemerals).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::{publish, Engine, ExecError, Mode};
use crate::compile::{Compiled, CompiledModel};
use crate::diagnostic::Location;
use crate::graph::Graph;
use crate::project::config::{Export, Materialization};
use crate::quality::run::{run_all, Outcome, Samples};
use crate::quality::{Assertion, Severity, Status as TestStatus, Subject};
use crate::storage::Warehouse;

/// How a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Success,
    Error,
    Skipped,
}

impl Status {
    /// Returns dbt's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// Why a model failed, with where to look.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

/// The outcome of one model.
#[derive(Debug, Clone)]
pub struct NodeResult {
    pub name: String,
    pub unique_id: String,
    pub materialized: Materialization,
    pub status: Status,
    pub rows: Option<usize>,
    pub bytes: Option<u64>,
    pub output_path: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub seconds: f64,
    pub message: String,
    pub failure: Option<Failure>,
    /// Assertions run on the staged table before it was published.
    pub assertions: Vec<Outcome>,
    /// Not rebuilt: its published version is up to date.
    pub reused: bool,
    /// An incremental build: how many new rows were merged into the
    /// published table.
    pub merged: Option<usize>,
    /// Bytes its query spilled to disk under `--memory-limit`.
    pub spilled_bytes: usize,
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
    pub policies: BTreeMap<String, super::policy::WritePolicy>,
}

/// What a run produced: model results and every assertion outcome.
pub struct RunOutput {
    pub models: Vec<NodeResult>,
    /// Outcomes of source assertions and of assertions that could only run
    /// after the models (they read a model built later).
    pub other_assertions: Vec<Outcome>,
}

impl RunOutput {
    /// Returns every assertion outcome of the run.
    pub fn all_assertions(&self) -> Vec<&Outcome> {
        let mut v: Vec<&Outcome> = self.models.iter().flat_map(|m| m.assertions.iter()).collect();
        v.extend(self.other_assertions.iter());
        v.sort_by(|a, b| a.assertion.unique_id.cmp(&b.assertion.unique_id));
        v
    }
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
    let compiled = plan.compiled;
    let graph = plan.graph;
    let selected = plan.selected;
    let mut blocked: BTreeMap<String, Failure> = BTreeMap::new();
    let samples = Samples { warehouse: &plan.warehouse, run_id: &plan.run_id };
    let audits = if plan.audit { plan_audits(compiled, graph, selected) } else { Audits::default() };

    // Unselected ancestors needed as inputs: tables stop the walk, views and
    // ephemerals need their own parents.
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
        for p in &graph.parents[&m] {
            let inlined = !compiled.models[p].config.materialized.writes_table();
            if !selected.contains(p) && upstream.insert(p.clone()) && inlined {
                stack.push(p.clone());
            }
        }
    }
    let needs_sources = |m: &CompiledModel| {
        selected.contains(&m.name) || (upstream.contains(&m.name) && !m.config.materialized.writes_table())
    };
    let sources: BTreeSet<&String> =
        compiled.models.values().filter(|m| needs_sources(m)).flat_map(|m| m.sources.iter()).collect();
    let mut source_errors: BTreeMap<String, Failure> = plan
        .stale_sources
        .iter()
        .map(|(key, why)| {
            let failure = Failure {
                message: format!("source `{key}` is stale: {why}"),
                location: compiled.sources.get(key).map(|s| s.table.defined_at.clone()),
                hint: Some("refresh the source, or set `on-stale-source: warn` in wh_project.yml".into()),
            };
            (key.clone(), failure)
        })
        .collect();
    let mut source_checks: Vec<Assertion> = Vec::new();
    for key in sources {
        if let Err(e) = plan.engine.register_source(&compiled.sources[key]).await {
            source_errors.insert(key.clone(), failure_of(&e, None));
        } else if plan.audit {
            source_checks
                .extend(compiled.assertions.iter().filter(|a| a.subject == Subject::Source(key.clone())).cloned());
        }
    }
    // Assertions on sources run before anything reads them.
    let mut other_assertions = run_all(&plan.engine, &source_checks, Some(&samples)).await;
    for o in &other_assertions {
        if matches!(o.status, TestStatus::Fail | TestStatus::Error) {
            let key = o.assertion.subject.name().to_string();
            source_errors.entry(key.clone()).or_insert_with(|| Failure {
                message: format!("source `{key}` failed assertion `{}`: {}", o.assertion.name, o.message),
                location: Some(o.assertion.defined_at.clone()),
                hint: o.sample.as_ref().map(|p| format!("failing rows are sampled in {p}")),
            });
        }
    }
    for name in graph.order().iter().filter(|n| upstream.contains(*n)) {
        let model = &compiled.models[name];
        if let Some(f) = input_failure(model, &source_errors, &blocked) {
            blocked.insert(name.clone(), f);
            continue;
        }
        let result = match model.output_path() {
            Some(rel) => {
                if plan.warehouse.exists(&rel).await.unwrap_or(false) {
                    register_output(&plan.engine, &plan.warehouse, model).await
                } else {
                    Err(ExecError::Upstream {
                        message: format!("upstream model `{name}` is not selected and has not been built (no `{rel}` in the warehouse)"),
                        hint: Some(format!("build it first, or select it too: --select +{name}")),
                    })
                }
            }
            None => plan.engine.register_view(name, &model.sql).await,
        };
        if let Err(e) = result {
            blocked.insert(name.clone(), failure_of(&e, Some(&compiled_location(&plan.compiled_dir, model))));
        }
    }

    // Schedule selected models as their selected parents finish.
    let inputs = |m: &String| -> BTreeSet<String> {
        let mut set: BTreeSet<String> = graph.parents[m].iter().filter(|p| selected.contains(*p)).cloned().collect();
        set.extend(audits.waits_for.get(m).into_iter().flatten().cloned());
        set
    };
    let mut waiting: BTreeMap<String, usize> = selected.iter().map(|m| (m.clone(), inputs(m).len())).collect();
    let mut dependents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in selected {
        for i in inputs(m) {
            dependents.entry(i).or_default().insert(m.clone());
        }
    }
    let mut ready: BTreeSet<String> = waiting.iter().filter(|(_, n)| **n == 0).map(|(m, _)| m.clone()).collect();
    let mut memory = InMemory::new(&dependents);
    let position: BTreeMap<&str, usize> = graph.order().iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut results: Vec<NodeResult> = Vec::new();
    let mut tasks: JoinSet<NodeResult> = JoinSet::new();
    let mut running: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    let threads = plan.threads.max(1);

    loop {
        // Start as many ready models as threads allow, in topological order.
        while tasks.len() < threads {
            // The ready set is usually small: pick its first in DAG order
            // without scanning the whole graph.
            let Some(name) = ready.iter().min_by_key(|n| position[n.as_str()]).cloned() else { break };
            ready.remove(&name);
            waiting.remove(&name);
            let model = compiled.models[&name].clone();
            if let Some(f) = input_failure(&model, &source_errors, &blocked) {
                let r = finished(&model, Status::Error, Utc::now(), Instant::now(), None, None, Some(f));
                report(Event::Finished(&r));
                let mut unsettled =
                    skip_descendants(&r, graph, selected, &mut waiting, &mut ready, &mut results, report, compiled);
                unsettled.push(r.name.clone());
                results.push(r);
                settle_failed(&plan, compiled, &unsettled, &dependents, &mut waiting, &mut ready).await;
                memory.settle(&plan, &unsettled, &[], &inputs).await;
                continue;
            }
            let job = ModelJob {
                engine: plan.engine.clone(),
                assertions: audits.by_model.get(&name).cloned().unwrap_or_default(),
                model,
                warehouse: plan.warehouse.clone(),
                run_id: plan.run_id.clone(),
                compiled_at: compiled_location(&plan.compiled_dir, &compiled.models[&name]),
                reuse: plan.reuse.contains(&name),
                full_refresh: plan.full_refresh,
                now: plan.now,
                policy: plan.policies.get(&name).cloned().unwrap_or_default(),
                unmet: plan
                    .policies
                    .get(&name)
                    .and_then(|p| super::policy::unmet(&compiled.models[&name], p, &plan.graph.ancestors(&name, None))),
            };
            report(Event::Started(&name));
            let handle = tasks.spawn(run_model(job));
            running.insert(handle.id(), name);
        }
        let Some(joined) = tasks.join_next_with_id().await else { break };
        let r = match joined {
            Ok((_, r)) => r,
            Err(e) => {
                // A panic inside the engine is a bug in wh or DataFusion: fail
                // this model, keep the run going.
                let model = &compiled.models[&running[&e.id()]];
                let failure = Failure {
                    message: format!(
                        "model `{}` crashed the engine: {e} (this is a bug; please report it)",
                        model.name
                    ),
                    location: None,
                    hint: None,
                };
                finished(model, Status::Error, Utc::now(), Instant::now(), None, None, Some(failure))
            }
        };
        report(Event::Finished(&r));
        if r.status == Status::Success {
            release(&r.name, &dependents, &mut waiting, &mut ready);
            // A table it built is held in memory for its readers; one it
            // reused is read from its file already.
            let held = if r.output_path.is_some() && !r.reused { vec![r.name.clone()] } else { Vec::new() };
            memory.settle(&plan, std::slice::from_ref(&r.name), &held, &inputs).await;
            results.push(r);
        } else {
            let mut unsettled =
                skip_descendants(&r, graph, selected, &mut waiting, &mut ready, &mut results, report, compiled);
            unsettled.push(r.name.clone());
            results.push(r);
            settle_failed(&plan, compiled, &unsettled, &dependents, &mut waiting, &mut ready).await;
            memory.settle(&plan, &unsettled, &[], &inputs).await;
        }
    }
    // Assertions that read a model built after their subject run last,
    // against what was published.
    let ok: BTreeSet<&str> = results.iter().filter(|r| r.status == Status::Success).map(|r| r.name.as_str()).collect();
    let runnable: Vec<Assertion> = audits
        .deferred
        .iter()
        .filter(|a| {
            ok.contains(a.subject.name())
                && a.depends_on.iter().all(|d| ok.contains(d.as_str()) || !selected.contains(d))
        })
        .cloned()
        .collect();
    other_assertions.extend(run_all(&plan.engine, &runnable, Some(&samples)).await);
    results.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
    RunOutput { models: results, other_assertions }
}

/// Tables held in memory for the models that read them. Once the last
/// selected reader of a table has finished (or was skipped), the table is
/// read from its published file instead, so that its batches are freed: a
/// run holds only the tables some model still needs, not every table it
/// built.
struct InMemory {
    /// Per model: its selected readers that have not finished.
    readers_left: BTreeMap<String, usize>,
    /// Tables built by this run and registered from memory.
    held: BTreeSet<String>,
}

impl InMemory {
    fn new(dependents: &BTreeMap<String, BTreeSet<String>>) -> InMemory {
        InMemory { readers_left: dependents.iter().map(|(k, v)| (k.clone(), v.len())).collect(), held: BTreeSet::new() }
    }

    /// Counts `done` as finished readers of their inputs, adds `held`, and
    /// moves every held table without readers left to its published file.
    async fn settle(
        &mut self,
        plan: &RunPlan<'_>,
        done: &[String],
        held: &[String],
        inputs: &dyn Fn(&String) -> BTreeSet<String>,
    ) {
        for name in done {
            for input in inputs(name) {
                if let Some(n) = self.readers_left.get_mut(&input) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        self.held.extend(held.iter().cloned());
        let free: Vec<String> =
            self.held.iter().filter(|m| self.readers_left.get(*m).is_none_or(|n| *n == 0)).cloned().collect();
        for name in free {
            self.held.remove(&name);
            // A table whose file is missing (not published) stays in memory;
            // one read from its file already stays as it is.
            let model = &plan.compiled.models[&name];
            if !plan.engine.holds(&name).await {
                continue;
            }
            if let Some(rel) = model.output_path() {
                if plan.warehouse.exists(&rel).await.unwrap_or(false) {
                    let _ = register_output(&plan.engine, &plan.warehouse, model).await;
                }
            }
        }
    }
}

/// Counts `name` as done for the models waiting on it.
fn release(
    name: &str,
    dependents: &BTreeMap<String, BTreeSet<String>>,
    waiting: &mut BTreeMap<String, usize>,
    ready: &mut BTreeSet<String>,
) {
    for d in dependents.get(name).into_iter().flatten() {
        if let Some(n) = waiting.get_mut(d) {
            *n -= 1;
            if *n == 0 {
                ready.insert(d.clone());
            }
        }
    }
}

/// Failed or skipped models no longer hold back models that only waited for
/// them to run an assertion (their real descendants are skipped already):
/// those assertions read the previously published version instead.
async fn settle_failed(
    plan: &RunPlan<'_>,
    compiled: &Compiled,
    names: &[String],
    dependents: &BTreeMap<String, BTreeSet<String>>,
    waiting: &mut BTreeMap<String, usize>,
    ready: &mut BTreeSet<String>,
) {
    for name in names {
        if dependents.get(name).is_none_or(|d| d.iter().all(|x| !waiting.contains_key(x))) {
            continue;
        }
        if let Some(rel) = compiled.models[name].output_path() {
            if plan.warehouse.exists(&rel).await.unwrap_or(false) {
                let _ = register_output(&plan.engine, &plan.warehouse, &compiled.models[name]).await;
            }
        }
        release(name, dependents, waiting, ready);
    }
}

/// Which assertions run where in a build.
#[derive(Default)]
struct Audits {
    /// Run on the staged table of their subject, before it is published.
    by_model: BTreeMap<String, Vec<Assertion>>,
    /// Extra inputs a model waits for: models its assertions read.
    waits_for: BTreeMap<String, BTreeSet<String>>,
    /// Run after every model: they read a descendant of their subject.
    deferred: Vec<Assertion>,
}

fn plan_audits(compiled: &Compiled, graph: &Graph, selected: &BTreeSet<String>) -> Audits {
    let mut audits = Audits::default();
    for a in &compiled.assertions {
        let Subject::Model(subject) = &a.subject else { continue };
        if !selected.contains(subject) {
            continue;
        }
        let descendants = graph.descendants(subject, None);
        if a.depends_on.iter().any(|d| descendants.contains(d)) {
            audits.deferred.push(a.clone());
            continue;
        }
        let waits: BTreeSet<String> =
            a.depends_on.iter().filter(|d| selected.contains(*d) && *d != subject).cloned().collect();
        audits.waits_for.entry(subject.clone()).or_default().extend(waits);
        audits.by_model.entry(subject.clone()).or_default().push(a.clone());
    }
    audits
}

/// Skips the selected descendants of a failed model; returns their names.
#[allow(clippy::too_many_arguments)]
fn skip_descendants(
    failed: &NodeResult,
    graph: &Graph,
    selected: &BTreeSet<String>,
    waiting: &mut BTreeMap<String, usize>,
    ready: &mut BTreeSet<String>,
    results: &mut Vec<NodeResult>,
    report: &mut dyn FnMut(Event),
    compiled: &Compiled,
) -> Vec<String> {
    let descendants = graph.descendants(&failed.name, None);
    let mut skipped = Vec::new();
    for name in graph.order() {
        if !selected.contains(name) || !descendants.contains(name) {
            continue;
        }
        if waiting.remove(name).is_none() && !ready.remove(name) {
            continue;
        }
        let model = &compiled.models[name];
        let now = Utc::now();
        let r = NodeResult {
            name: name.clone(),
            unique_id: model.unique_id.clone(),
            materialized: model.config.materialized,
            status: Status::Skipped,
            rows: None,
            bytes: None,
            output_path: model.output_path(),
            started_at: now,
            completed_at: now,
            seconds: 0.0,
            message: format!("skipped: upstream model `{}` failed", failed.name),
            failure: None,
            assertions: Vec::new(),
            reused: false,
            merged: None,
            spilled_bytes: 0,
        };
        report(Event::Finished(&r));
        results.push(r);
        skipped.push(name.clone());
    }
    skipped
}

/// Returns why a model cannot run because of a failed source or upstream.
fn input_failure(
    model: &CompiledModel,
    sources: &BTreeMap<String, Failure>,
    blocked: &BTreeMap<String, Failure>,
) -> Option<Failure> {
    model
        .sources
        .iter()
        .find_map(|s| sources.get(s).cloned())
        .or_else(|| model.refs.iter().find_map(|r| blocked.get(r).cloned()))
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

/// One model to run, with what its task needs.
struct ModelJob {
    engine: Engine,
    model: CompiledModel,
    assertions: Vec<Assertion>,
    warehouse: Warehouse,
    run_id: String,
    compiled_at: PathBuf,
    /// Its published version is up to date: read it instead of rebuilding.
    reuse: bool,
    full_refresh: bool,
    now: DateTime<Utc>,
    /// Enforced on its rows and columns when written.
    policy: super::policy::WritePolicy,
    /// Why the policy cannot be enforced (fails the model).
    unmet: Option<String>,
}

/// Runs one model: stage, check the contract, audit, publish.
async fn run_model(job: ModelJob) -> NodeResult {
    let ModelJob { engine, model, assertions, warehouse, run_id, compiled_at, reuse, full_refresh, now, policy, unmet } =
        job;
    let started_at = Utc::now();
    let clock = Instant::now();
    let samples = Samples { warehouse: &warehouse, run_id: &run_id };
    if reuse && register_output(&engine, &warehouse, &model).await.is_ok() {
        let mut r = finished(&model, Status::Success, started_at, clock, None, None, None);
        r.reused = true;
        r.message = "up to date: same SQL, config, assertions, inputs and source files".into();
        // Its assertions run on the published version, so that every build
        // records the state of every selected model.
        r.assertions = run_all(&engine, &assertions, Some(&samples)).await;
        return r;
    }
    let mut outcomes = Vec::new();
    let mut spilled = 0;
    let mode = match model.output_path() {
        Some(rel) => Some(mode_of(&warehouse, &model, full_refresh, &rel).await),
        None => None,
    };
    let mut planned = match mode {
        Some(mode) => plan_table(&engine, &warehouse, &model, mode, now).await,
        None => Ok(None),
    };
    if let Some(why) = unmet {
        let f = Failure {
            message: why,
            location: model.props_at.clone().or_else(|| Some(Location::file(&model.path))),
            hint: Some("ref the consent model in the model's SQL, or remove the tag".into()),
        };
        return finished(&model, Status::Error, started_at, clock, None, None, Some(f));
    }
    // Forgotten identifiers, consent and masks apply to whatever the SQL
    // (or a merge) returns.
    if !policy.is_empty() {
        if let Ok(Some((df, merged))) = planned {
            planned = match engine.enforce(&policy, df).await {
                Ok(df) => Ok(Some((df, merged))),
                Err(e) => Err(super::runtime_error(e)),
            };
        }
    }
    if mode == Some(Mode::Incremental) && matches!(planned, Ok(None)) {
        // No new rows: the published table (registered for readers) stays.
        let rows = engine.row_count(&model.name).await.ok();
        let mut r = finished(&model, Status::Success, started_at, clock, rows, None, None);
        r.merged = Some(0);
        r.message = "no new rows: the published table stays as it is".into();
        r.assertions = run_all(&engine, &assertions, Some(&samples)).await;
        return r;
    }
    let merged = planned.as_ref().ok().and_then(|p| p.as_ref()).and_then(|(_, merged)| *merged);
    // Errors in the incremental SQL point at its own compiled file.
    let compiled_at = match (mode, model.compiled_paths().1) {
        (Some(Mode::Incremental), Some(p)) => compiled_at.with_file_name(p.file_name().unwrap_or_default()),
        _ => compiled_at,
    };
    let outcome: Result<(Option<usize>, Option<u64>), Failure> = match (model.output_path(), planned) {
        (_, Err(e)) => {
            // Merge and snapshot errors concern the model's own file.
            let mut f = failure_of(&e, Some(&compiled_at));
            f.location = f.location.or_else(|| Some(Location::file(&model.path)));
            Err(f)
        }
        (Some(rel), Ok(Some((df, _)))) if model.is_delta() || model.is_partitioned_parquet() => match engine
            .materialize(&model.name, df)
            .await
        {
            Ok((schema, batches)) => {
                let problems = publish::schema_problems(&schema);
                let verdict = if !problems.is_empty() {
                    Err(Failure {
                        message: format!("the table would not open in every BI tool: {}", problems.join("; ")),
                        location: Some(Location::file(&model.path)),
                        hint: Some("cast the column in the SQL to a flat type".into()),
                    })
                } else if let Err(f) = check_contract(&model, &schema) {
                    Err(f)
                } else {
                    outcomes = run_all(&engine, &assertions, Some(&samples)).await;
                    audit_verdict(&outcomes)
                };
                let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
                let partition_by = &model.config.partition_by;
                match verdict {
                    Ok(()) if model.is_delta() => warehouse
                        .write_delta(&rel, schema, batches, partition_by)
                        .await
                        .map(|_| (Some(rows), None))
                        .map_err(|e| Failure {
                            message: format!("cannot commit the Delta table `{}`: {e}", warehouse.location(&rel)),
                            location: None,
                            hint: None,
                        }),
                    Ok(()) => super::partitioned::publish(&warehouse, &rel, &run_id, &schema, &batches, partition_by)
                        .await
                        .map(|p| (Some(p.rows), Some(p.bytes)))
                        .map_err(|e| Failure {
                            hint: e
                                .contains("is not a column of the model")
                                .then(|| "`partition_by` names columns the model returns".to_string()),
                            message: format!("cannot publish `{}`: {e}", warehouse.location(&rel)),
                            location: model.props_at.clone().or_else(|| Some(Location::file(&model.path))),
                        }),
                    Err(f) => Err(f),
                }
            }
            Err(e) => Err(failure_of(&e, Some(&compiled_at))),
        },
        (Some(rel), Ok(Some((df, _)))) => {
            match engine.stage_table(&model.name, df, &warehouse.staging_path(&rel)).await {
                Ok(out) => {
                    spilled = out.spilled_bytes;
                    let compat = match publish::compatibility_problems(&out.staged.temp) {
                        Ok(problems) if problems.is_empty() => Ok(()),
                        Ok(problems) => Err(Failure {
                            message: format!(
                                "the written file would not open in every BI tool: {}",
                                problems.join("; ")
                            ),
                            location: Some(Location::file(&model.path)),
                            hint: Some(
                                "cast the column in the SQL to a flat, signed, microsecond or <= 18-digit type".into(),
                            ),
                        }),
                        Err(e) => Err(failure_of(&ExecError::Io { path: out.staged.temp.clone(), source: e }, None)),
                    };
                    let verdict = match compat.and_then(|()| check_contract(&model, &out.schema)) {
                        Err(f) => Err(f),
                        Ok(()) => {
                            outcomes = run_all(&engine, &assertions, Some(&samples)).await;
                            audit_verdict(&outcomes)
                        }
                    };
                    match verdict {
                        Ok(()) => match warehouse.publish(&out.staged, &rel).await {
                            // Readers read the published file (the staged one moved).
                            Ok(()) if register_output(&engine, &warehouse, &model).await.is_err() => Err(Failure {
                                message: format!(
                                    "`{}` was published but cannot be read back for the models after it",
                                    warehouse.location(&rel)
                                ),
                                location: Some(Location::file(&model.path)),
                                hint: Some("check that the warehouse is readable, then rerun: wh retry".into()),
                            }),
                            Ok(()) if model.config.export == Some(Export::Csv) => {
                                export_csv(&engine, &warehouse, &model.name, &rel)
                                    .await
                                    .map(|()| (Some(out.staged.rows), Some(out.staged.bytes)))
                            }
                            Ok(()) => Ok((Some(out.staged.rows), Some(out.staged.bytes))),
                            Err(source) => {
                                publish::discard(&out.staged);
                                Err(failure_of(&ExecError::Io { path: warehouse.location(&rel).into(), source }, None))
                            }
                        },
                        Err(f) => {
                            publish::discard(&out.staged);
                            Err(f)
                        }
                    }
                }
                Err(e) => Err(failure_of(&e, Some(&compiled_at))),
            }
        }
        _ => match engine.register_view(&model.name, &model.sql).await {
            Ok(()) => {
                outcomes = run_all(&engine, &assertions, Some(&samples)).await;
                audit_verdict(&outcomes).map(|()| (None, None))
            }
            Err(e) => Err(failure_of(&e, Some(&compiled_at))),
        },
    };
    let mut r = match outcome {
        Ok((rows, bytes)) => {
            let mut r = finished(&model, Status::Success, started_at, clock, rows, bytes, None);
            r.merged = merged;
            r.spilled_bytes = spilled;
            if let (Some(rows), Some(new)) = (rows, merged) {
                r.message = format!("{rows} rows ({new} new rows merged into the published table)");
            }
            r
        }
        Err(mut f) => {
            f.message = format!("model `{}` ({}) failed: {}", model.name, model.path.display(), f.message);
            finished(&model, Status::Error, started_at, clock, None, None, Some(f))
        }
    };
    r.assertions = outcomes;
    r
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
) -> Result<Option<(datafusion::prelude::DataFrame, Option<usize>)>, ExecError> {
    if matches!(mode, Mode::Incremental | Mode::Snapshot { previous: true }) {
        register_output(engine, warehouse, model).await?;
    }
    engine.plan_model(model, mode, now).await
}

/// Checks the model's contract (when enforced) against what it returned.
fn check_contract(model: &CompiledModel, schema: &datafusion::arrow::datatypes::Schema) -> Result<(), Failure> {
    super::contract::check(model, schema).map_err(|diff| Failure {
        message: diff,
        location: Some(model.props_at.clone().unwrap_or_else(|| Location::file(&model.path))),
        hint: Some("declare the columns as the model returns them, or cast in the SQL to the declared types".into()),
    })
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
        let Some(version) = super::partitioned::current_version(warehouse, &rel).await else {
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

/// Writes the published table `name` as CSV beside its Parquet file.
async fn export_csv(engine: &Engine, warehouse: &Warehouse, name: &str, rel: &str) -> Result<(), Failure> {
    let csv_rel = format!("{}.csv", rel.trim_end_matches(".parquet"));
    let fail = |message: String| Failure {
        message: format!("the CSV export `{}` failed: {message}", warehouse.location(&csv_rel)),
        location: None,
        hint: None,
    };
    let (_, batches) = engine.query(&format!("select * from \"{name}\"")).await.map_err(|e| fail(e.to_string()))?;
    let staged = publish::stage_csv(&batches, &warehouse.staging_path(&csv_rel)).map_err(|e| fail(e.to_string()))?;
    warehouse.publish(&staged, &csv_rel).await.map_err(|e| fail(e.to_string()))
}

/// Fails a model whose error-severity assertions failed (or could not run).
fn audit_verdict(outcomes: &[Outcome]) -> Result<(), Failure> {
    // An assertion that could not run blocks only if it is error-severity.
    let blocks = |o: &&Outcome| {
        o.status == TestStatus::Fail || (o.status == TestStatus::Error && o.assertion.severity == Severity::Error)
    };
    let failed: Vec<&Outcome> = outcomes.iter().filter(blocks).collect();
    let Some(first) = failed.first() else { return Ok(()) };
    let list: Vec<String> = failed.iter().map(|o| format!("`{}` ({})", o.assertion.name, o.message)).collect();
    Err(Failure {
        message: format!(
            "not published: assertion{} {} failed",
            if failed.len() > 1 { "s" } else { "" },
            list.join(", ")
        ),
        location: Some(first.assertion.defined_at.clone()),
        hint: first
            .sample
            .as_ref()
            .map(|p| format!("failing rows are sampled in warehouse/{p}; the previous version stays published")),
    })
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
