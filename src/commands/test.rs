//! `wh test`: run the assertions of the selected models (and of the sources
//! they read) against what is published, for the `wh run` then `wh test`
//! flow; and the recording and reporting shared with `wh build`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::{compile_project, open_warehouse, Settings};
use crate::artifacts::{self, Invocation};
use crate::compile::unit_tests::{UnitTest, UNIT_KIND};
use crate::compile::Compiled;
use crate::error::Error;
use crate::quality::history::{self, owners_from_meta, RunInfo};
use crate::quality::run::{run_all, Outcome, Samples};
use crate::quality::{Assertion, Status, Subject};
use crate::results::NodeResult;
use crate::storage::Warehouse;

/// Tests the published warehouse; exit code 1 if an error-severity
/// assertion failed.
pub async fn execute(settings: &Settings, junit: Option<&Path>) -> Result<ExitCode, Error> {
    let clock = Instant::now();
    let (compiled, graph) = compile_project(settings)?;
    let selected = settings.selected(&compiled, &graph)?;
    let ctx = super::context::Context::reachable(settings, &compiled).await?;
    let warehouse = &ctx.warehouse;
    let mut compiled = compiled;
    crate::state::fill_volume_baselines(&mut compiled.assertions, &crate::state::load(warehouse).await);
    let inv = Invocation::new("test", &settings.project);
    let everything = settings.select.0.is_empty() && settings.exclude.0.is_empty();
    let read_sources: std::collections::BTreeSet<&String> =
        compiled.models.values().filter(|m| selected.contains(&m.name)).flat_map(|m| m.sources.iter()).collect();
    let types = settings.test_types();
    let chosen: Vec<Assertion> = compiled
        .assertions
        .iter()
        .filter(|a| types.allows(&a.kind))
        .filter(|a| match &a.subject {
            Subject::Model(m) => selected.contains(m),
            Subject::Source(s) => everything || read_sources.contains(s),
        })
        .cloned()
        .collect();
    let units: Vec<UnitTest> = match types.allows(UNIT_KIND) {
        true => compiled.unit_tests.iter().filter(|t| selected.contains(&t.model)).cloned().collect(),
        false => Vec::new(),
    };
    settings.log(format!(
        "Testing {} assertions{} on the published warehouse {}",
        chosen.len(),
        if units.is_empty() { String::new() } else { format!(" and {} unit tests", units.len()) },
        settings.project.target.warehouse
    ));
    let engine = open_warehouse(settings, &ctx, &compiled, &graph).await?;
    let mut chosen = chosen;
    crate::quality::monitor::prepare(&engine, warehouse, &mut chosen, settings.project.run_started_at, false).await;
    let samples = Samples { warehouse, run_id: &inv.id };
    let mut outcomes = crate::quality::unit::run_all(&engine, &units).await;
    outcomes.extend(run_all(&engine, &chosen, Some(&samples)).await);
    let refs: Vec<&Outcome> = outcomes.iter().collect();
    for o in &refs {
        settings.log(format!(
            "  {:<5} {:<48} {}",
            o.status.as_str().to_uppercase(),
            o.assertion.name,
            if o.status == Status::Pass { String::new() } else { o.message.clone() }
        ));
    }
    record(settings, &compiled, warehouse, &inv, &refs).await?;
    let elapsed = clock.elapsed().as_secs_f64();
    let run_results = artifacts::run_results(&inv, &[], &refs, elapsed, settings.args.clone());
    let path = settings.target_dir().join("run_results.json");
    artifacts::write_json(&path, &run_results).map_err(|source| Error::Io { path: path.clone(), source })?;
    if let Some(path) = junit {
        write_junit(path, &inv, &[], &refs)?;
    }
    let failed = summarize(settings, &refs);
    settings.log(format!("\nFinished in {elapsed:.2}s"));
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Appends the outcomes to the warehouse's assertion history.
pub async fn record(
    settings: &Settings,
    compiled: &Compiled,
    warehouse: &Warehouse,
    inv: &Invocation,
    outcomes: &[&Outcome],
) -> Result<(), Error> {
    let run = RunInfo {
        run_id: &inv.id,
        started_at: inv.started_at,
        target: &settings.project.target.name,
        command: &inv.command,
    };
    let owners = |s: &Subject| match s {
        Subject::Model(m) => compiled.models.get(m).map(|m| owners_from_meta(&m.config.meta)).unwrap_or_default(),
        Subject::Source(k) => compiled.sources.get(k).map(|s| owners_from_meta(&s.table.meta)).unwrap_or_default(),
    };
    history::append(warehouse, &run, outcomes, &owners)
        .await
        .map_err(|source| Error::Io { path: warehouse.location(history::DIR).into(), source })?;
    crate::quality::monitor::append(warehouse, &run, outcomes)
        .await
        .map(|_| ())
        .map_err(|source| Error::Io { path: warehouse.location(crate::quality::monitor::DIR).into(), source })
}

/// Prints the assertion summary; returns how many failed or errored.
pub fn summarize(settings: &Settings, outcomes: &[&Outcome]) -> usize {
    if outcomes.is_empty() {
        return 0;
    }
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let (pass, warn, fail, error) =
        (count(Status::Pass), count(Status::Warn), count(Status::Fail), count(Status::Error));
    let noteworthy: Vec<&&Outcome> = outcomes.iter().filter(|o| o.status != Status::Pass).collect();
    if !noteworthy.is_empty() {
        settings.log("");
    }
    for o in noteworthy {
        let a = &o.assertion;
        let what = format!("{}{}", a.subject.name(), a.column.as_ref().map(|c| format!(".{c}")).unwrap_or_default());
        let line = format!(
            "{}: {} `{}` on {what}: {}{}",
            o.status.as_str().to_uppercase(),
            a.kind,
            a.name,
            o.message,
            o.sample.as_ref().map(|s| format!(" (sample: warehouse/{s})")).unwrap_or_default()
        );
        if matches!(o.status, Status::Fail | Status::Error) {
            eprintln!("{line}");
        } else {
            settings.log(line);
        }
    }
    let failing_rows: u64 = outcomes.iter().filter(|o| o.status != Status::Pass).map(|o| o.failing).sum();
    settings.log(format!(
        "Assertions: {} run, {pass} passed, {warn} warned, {fail} failed, {error} errored ({failing_rows} failing rows)",
        outcomes.len()
    ));
    fail + error
}

/// Writes JUnit XML for CI systems.
pub fn write_junit(path: &Path, inv: &Invocation, models: &[NodeResult], outcomes: &[&Outcome]) -> Result<(), Error> {
    let stamp = inv.started_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let xml = crate::artifacts::junit::render(&inv.project, &inv.command, &stamp, models, outcomes);
    crate::storage::publish::write_atomic(path, xml.as_bytes())
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
