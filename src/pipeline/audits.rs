//! Which assertions run where in a build, and the verdict they give.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::assertions::{Assertion, Severity, Status as TestStatus, Subject};
use crate::compile::Compiled;
use crate::graph::Graph;
use crate::quality::run::Outcome;
use crate::results::Failure;

/// Which assertions run where in a build.
#[derive(Default)]
pub(super) struct Audits {
    /// Run on the staged table of their subject, before it is published.
    pub by_model: BTreeMap<String, Vec<Assertion>>,
    /// Extra inputs a model waits for: models its assertions read.
    pub waits_for: BTreeMap<String, BTreeSet<String>>,
    /// Run after every model: they read a descendant of their subject.
    pub deferred: Vec<Assertion>,
}

impl Audits {
    /// Places each assertion on a selected model: on its staged table, or
    /// after the build when it reads a descendant of its subject.
    pub fn plan(compiled: &Compiled, graph: &Graph, selected: &BTreeSet<String>) -> Audits {
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
}

/// Fails a model whose error-severity assertions failed (or could not run).
pub(super) fn audit_verdict(outcomes: &[Outcome]) -> Result<(), Failure> {
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
