//! The queue of a run's selected models: how many inputs each still waits
//! for, which are ready to start, and how each ended.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::audits::Audits;
use super::Event;
use crate::compile::{Compiled, CompiledModel};
use crate::graph::Graph;
use crate::results::{NodeResult, Status};

static NONE: BTreeSet<String> = BTreeSet::new();

/// Selected models move from waiting to ready as their inputs finish, and
/// to done when they end (built, failed, or skipped because an input
/// failed).
pub(super) struct Scheduler<'a> {
    graph: &'a Graph,
    selected: &'a BTreeSet<String>,
    /// Per selected model: the selected models it waits for (its selected
    /// parents and the models its assertions read).
    inputs: BTreeMap<String, BTreeSet<String>>,
    /// The reverse of `inputs`.
    dependents: BTreeMap<String, BTreeSet<String>>,
    /// Models not started: how many of their inputs have not finished.
    waiting: BTreeMap<String, usize>,
    ready: BTreeSet<String>,
    /// Each model's place in the DAG's order: ready models start in it.
    position: BTreeMap<&'a str, usize>,
    done: Vec<NodeResult>,
}

impl<'a> Scheduler<'a> {
    pub fn new(graph: &'a Graph, selected: &'a BTreeSet<String>, audits: &Audits) -> Scheduler<'a> {
        let inputs: BTreeMap<String, BTreeSet<String>> = selected
            .iter()
            .map(|m| {
                let mut set: BTreeSet<String> =
                    graph.parents[m].iter().filter(|p| selected.contains(*p)).cloned().collect();
                set.extend(audits.waits_for.get(m).into_iter().flatten().cloned());
                (m.clone(), set)
            })
            .collect();
        let mut dependents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, ins) in &inputs {
            for i in ins {
                dependents.entry(i.clone()).or_default().insert(m.clone());
            }
        }
        let waiting: BTreeMap<String, usize> = inputs.iter().map(|(m, ins)| (m.clone(), ins.len())).collect();
        let ready = waiting.iter().filter(|(_, n)| **n == 0).map(|(m, _)| m.clone()).collect();
        let position = graph.order().iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        Scheduler { graph, selected, inputs, dependents, waiting, ready, position, done: Vec::new() }
    }

    /// The selected models `name` waits for.
    pub fn inputs(&self, name: &str) -> &BTreeSet<String> {
        self.inputs.get(name).unwrap_or(&NONE)
    }

    /// Per model: how many selected models read it.
    pub fn reader_counts(&self) -> BTreeMap<String, usize> {
        self.dependents.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    /// Takes the first ready model in DAG order.
    pub fn next_ready(&mut self) -> Option<String> {
        // The ready set is usually small: pick its first in DAG order
        // without scanning the whole graph.
        let name = self.ready.iter().min_by_key(|n| self.position[n.as_str()]).cloned()?;
        self.ready.remove(&name);
        self.waiting.remove(&name);
        Some(name)
    }

    /// Records a built model; its readers wait for one input fewer.
    pub fn succeeded(&mut self, result: NodeResult) {
        self.release(&result.name.clone());
        self.done.push(result);
    }

    /// Records a failed model and skips its selected descendants (reporting
    /// each); returns the names of both.
    pub fn failed(&mut self, result: NodeResult, compiled: &Compiled, report: &mut dyn FnMut(Event)) -> Vec<String> {
        let descendants = self.graph.descendants(&result.name, None);
        let mut ended = Vec::new();
        for name in self.graph.order() {
            if !self.selected.contains(name) || !descendants.contains(name) {
                continue;
            }
            if self.waiting.remove(name).is_none() && !self.ready.remove(name) {
                continue;
            }
            let r = skipped(&compiled.models[name], &result.name);
            report(Event::Finished(&r));
            self.done.push(r);
            ended.push(name.clone());
        }
        ended.push(result.name.clone());
        self.done.push(result);
        ended
    }

    /// Whether a model that has not started still waits for `name`.
    pub fn waited_on(&self, name: &str) -> bool {
        self.dependents.get(name).is_some_and(|d| d.iter().any(|x| self.waiting.contains_key(x)))
    }

    /// Counts `name` as done for the models waiting on it.
    pub fn release(&mut self, name: &str) {
        for d in self.dependents.get(name).into_iter().flatten() {
            if let Some(n) = self.waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    self.ready.insert(d.clone());
                }
            }
        }
    }

    /// How every model ended, by unique id.
    pub fn into_results(self) -> Vec<NodeResult> {
        let mut done = self.done;
        done.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
        done
    }
}

/// The result of a model skipped because `failed`, which it reads, failed.
fn skipped(model: &CompiledModel, failed: &str) -> NodeResult {
    let now = Utc::now();
    NodeResult {
        name: model.name.clone(),
        unique_id: model.unique_id.clone(),
        materialized: model.config.materialized,
        status: Status::Skipped,
        rows: None,
        bytes: None,
        output_path: model.output_path(),
        started_at: now,
        completed_at: now,
        seconds: 0.0,
        message: format!("skipped: upstream model `{failed}` failed"),
        failure: None,
        assertions: Vec::new(),
        reused: false,
        merged: None,
        spilled_bytes: 0,
    }
}
