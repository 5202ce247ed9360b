//! Runs selected models in dependency order on the engine, up to `threads`
//! at once. A failed model skips its descendants; independent branches go
//! on. Unselected parents are read from the warehouse (tables) or planned
//! from their SQL (views, ephemerals).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::{publish, Engine, ExecError};
use crate::compile::{Compiled, CompiledModel};
use crate::diagnostic::Location;
use crate::graph::Graph;
use crate::project::config::Materialization;

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
}

/// Everything a run needs.
pub struct RunPlan<'a> {
    pub compiled: &'a Compiled,
    pub graph: &'a Graph,
    pub selected: &'a BTreeSet<String>,
    pub engine: Engine,
    /// Local warehouse root.
    pub warehouse: PathBuf,
    /// Where compiled SQL was written (for error locations).
    pub compiled_dir: PathBuf,
    pub threads: usize,
}

/// Runs the plan; calls `report` as each model finishes or is skipped.
pub async fn run(plan: RunPlan<'_>, report: &mut dyn FnMut(&NodeResult)) -> Vec<NodeResult> {
    let compiled = plan.compiled;
    let graph = plan.graph;
    let selected = plan.selected;
    let mut blocked: BTreeMap<String, Failure> = BTreeMap::new();

    // Unselected ancestors needed as inputs: tables stop the walk, views and
    // ephemerals need their own parents.
    let mut upstream: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = selected.iter().cloned().collect();
    while let Some(m) = stack.pop() {
        for p in &graph.parents[&m] {
            let inlined = compiled.models[p].config.materialized != Materialization::Table;
            if !selected.contains(p) && upstream.insert(p.clone()) && inlined {
                stack.push(p.clone());
            }
        }
    }
    let needs_sources = |m: &CompiledModel| {
        selected.contains(&m.name) || (upstream.contains(&m.name) && m.config.materialized != Materialization::Table)
    };
    let sources: BTreeSet<&String> =
        compiled.models.values().filter(|m| needs_sources(m)).flat_map(|m| m.sources.iter()).collect();
    let mut source_errors: BTreeMap<String, Failure> = BTreeMap::new();
    for key in sources {
        if let Err(e) = plan.engine.register_source(&compiled.sources[key]).await {
            source_errors.insert(key.clone(), failure_of(&e, None));
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
                let path = plan.warehouse.join(&rel);
                if path.is_file() {
                    plan.engine.register_published(name, &path).await
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
    let mut waiting: BTreeMap<String, usize> = selected
        .iter()
        .map(|m| (m.clone(), graph.parents[m].iter().filter(|p| selected.contains(*p)).count()))
        .collect();
    let mut ready: BTreeSet<String> = waiting.iter().filter(|(_, n)| **n == 0).map(|(m, _)| m.clone()).collect();
    let mut results: Vec<NodeResult> = Vec::new();
    let mut tasks: JoinSet<NodeResult> = JoinSet::new();
    let mut running: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    let threads = plan.threads.max(1);

    loop {
        // Start as many ready models as threads allow, in topological order.
        while tasks.len() < threads {
            let Some(name) = graph.order().iter().find(|n| ready.contains(*n)).cloned() else { break };
            ready.remove(&name);
            waiting.remove(&name);
            let model = compiled.models[&name].clone();
            if let Some(f) = input_failure(&model, &source_errors, &blocked) {
                let r = finished(&model, Status::Error, Utc::now(), Instant::now(), None, None, Some(f));
                report(&r);
                skip_descendants(&r, graph, selected, &mut waiting, &mut ready, &mut results, report, compiled);
                results.push(r);
                continue;
            }
            let engine = plan.engine.clone();
            let warehouse = plan.warehouse.clone();
            let compiled_at = compiled_location(&plan.compiled_dir, &model);
            let handle = tasks.spawn(async move { run_model(engine, model, warehouse, compiled_at).await });
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
        report(&r);
        if r.status == Status::Success {
            for child in &graph.children[&r.name] {
                if let Some(n) = waiting.get_mut(child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(child.clone());
                    }
                }
            }
        } else {
            skip_descendants(&r, graph, selected, &mut waiting, &mut ready, &mut results, report, compiled);
        }
        results.push(r);
    }
    results.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
    results
}

#[allow(clippy::too_many_arguments)]
fn skip_descendants(
    failed: &NodeResult,
    graph: &Graph,
    selected: &BTreeSet<String>,
    waiting: &mut BTreeMap<String, usize>,
    ready: &mut BTreeSet<String>,
    results: &mut Vec<NodeResult>,
    report: &mut dyn FnMut(&NodeResult),
    compiled: &Compiled,
) {
    let descendants = graph.descendants(&failed.name, None);
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
        };
        report(&r);
        results.push(r);
    }
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
    compiled_dir.join(&model.path)
}

fn failure_of(err: &ExecError, compiled_file: Option<&Path>) -> Failure {
    let location = match err {
        ExecError::Sql { location: Some((line, col)), .. } => compiled_file.map(|f| Location::at(f, *line, *col)),
        ExecError::Sql { .. } => compiled_file.map(Location::file),
        ExecError::Source { location, .. } => Some(location.clone()),
        _ => None,
    };
    Failure { message: err.to_string(), location, hint: err.hint().map(str::to_string) }
}

async fn run_model(engine: Engine, model: CompiledModel, warehouse: PathBuf, compiled_at: PathBuf) -> NodeResult {
    let started_at = Utc::now();
    let clock = Instant::now();
    let outcome = match model.output_path() {
        Some(rel) => match engine.stage_table(&model.name, &model.sql, &warehouse.join(&rel)).await {
            Ok(out) => match publish::publish(&out.staged) {
                Ok(()) => Ok((Some(out.staged.rows), Some(out.staged.bytes))),
                Err(source) => {
                    publish::discard(&out.staged);
                    Err(ExecError::Io { path: out.staged.dest.clone(), source })
                }
            },
            Err(e) => Err(e),
        },
        None => engine.register_view(&model.name, &model.sql).await.map(|()| (None, None)),
    };
    match outcome {
        Ok((rows, bytes)) => finished(&model, Status::Success, started_at, clock, rows, bytes, None),
        Err(e) => {
            let mut f = failure_of(&e, Some(&compiled_at));
            f.message = format!("model `{}` ({}) failed: {}", model.name, model.path.display(), f.message);
            finished(&model, Status::Error, started_at, clock, None, None, Some(f))
        }
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
    }
}
