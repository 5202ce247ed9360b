//! Tables held in memory for the models that read them. Once the last
//! selected reader of a table has finished (or was skipped), the table is
//! read from its staged (or published) file instead, so that its batches are freed: a
//! run holds only the tables some model still needs, not every table it
//! built.

use std::collections::{BTreeMap, BTreeSet};

use super::scheduler::Scheduler;
use super::staging::Staging;
use super::{register_output, RunPlan};

pub(super) struct InMemory {
    staging: Staging,
    /// Per model: its selected readers that have not finished.
    readers_left: BTreeMap<String, usize>,
    /// Tables built by this run and registered from memory.
    held: BTreeSet<String>,
}

impl InMemory {
    pub fn new(scheduler: &Scheduler<'_>, staging: &Staging) -> InMemory {
        InMemory { staging: staging.clone(), readers_left: scheduler.reader_counts(), held: BTreeSet::new() }
    }

    /// Registers the version of `name` this build reads: its staged file
    /// when it staged one, else its published one, if any.
    pub async fn register_current(&self, plan: &RunPlan<'_>, name: &str) {
        if let Ok(true) = self.staging.register(&plan.engine, name).await {
            return;
        }
        let model = &plan.compiled.models[name];
        if let Some(rel) = model.output_path() {
            if plan.warehouse.exists(&rel).await.unwrap_or(false) {
                let _ = register_output(&plan.engine, &plan.warehouse, model).await;
            }
        }
    }

    /// Counts `done` as finished readers of their inputs, adds `held`, and
    /// moves every held table without readers left to its published file.
    pub async fn settle(&mut self, plan: &RunPlan<'_>, scheduler: &Scheduler<'_>, done: &[String], held: &[String]) {
        for name in done {
            for input in scheduler.inputs(name) {
                if let Some(n) = self.readers_left.get_mut(input) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        self.held.extend(held.iter().cloned());
        let free: Vec<String> =
            self.held.iter().filter(|m| self.readers_left.get(*m).is_none_or(|n| *n == 0)).cloned().collect();
        for name in free {
            self.held.remove(&name);
            // One read from its file already stays as it is.
            if plan.engine.holds(&name).await {
                self.register_current(plan, &name).await;
            }
        }
    }
}
