//! What a build produced, for everything that reports on it (the
//! terminal, `run_results.json`, JUnit, OpenLineage, alerts): each model's
//! [`NodeResult`] and the run's [`RunOutput`].

use chrono::{DateTime, Utc};

use crate::project::config::Materialization;
use crate::quality::run::Outcome;

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
pub type Failure = crate::diagnostic::Diagnostic;

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
