//! What a finished build leaves behind: the state record, the assertion
//! history and `run_results.json` (in the target folder and the
//! warehouse), OpenLineage events, `catalog.json`, and alerts.

use std::collections::BTreeMap;

use super::{Finished, Settings};
use crate::artifacts::{self, Invocation};
use crate::commands::test;
use crate::compile::Compiled;
use crate::error::Error;
use crate::lineage::openlineage::{self, RunContext};
use crate::lineage::ProjectLineage;
use crate::project::config::AlertOn;
use crate::results::Status;
use crate::state;
use crate::storage::Warehouse;

/// Writes the run's records; returns those that could not be written to
/// the warehouse (the store went away): they are reported, and fail the
/// run, after the rest.
pub(super) async fn record(
    settings: &Settings,
    run: &Finished<'_>,
    fingerprints: &BTreeMap<String, String>,
    mut recorded: BTreeMap<String, state::Entry>,
    audit: bool,
) -> Result<Vec<String>, Error> {
    let (warehouse, inv) = (&run.p.ctx.warehouse, &run.p.inv);
    let mut unrecorded: Vec<String> = Vec::new();
    for r in &run.output.models {
        match r.status {
            Status::Success if r.reused => {}
            Status::Success if r.output_path.is_some() => {
                let mut rows = recorded.get(&r.name).map(|e| e.rows.clone()).unwrap_or_default();
                rows.extend(r.rows.map(|n| n as u64));
                let excess = rows.len().saturating_sub(state::ROW_HISTORY);
                rows.drain(..excess);
                let entry = state::Entry { fingerprint: fingerprints[&r.name].clone(), audited: audit, rows };
                recorded.insert(r.name.clone(), entry);
            }
            _ => {
                recorded.remove(&r.name);
            }
        }
    }
    if let Err(e) = state::save(warehouse, &recorded).await {
        unrecorded.push(format!("cannot write `{}`: {e}", warehouse.location(state::STATE)));
    }
    if let Err(e) = test::record(settings, &run.p.compiled, warehouse, inv, &run.outcomes).await {
        unrecorded
            .push(crate::error::render(&e, &settings.project.root).trim().trim_start_matches("error: ").to_string());
    }
    let run_results =
        artifacts::run_results(inv, &run.output.models, &run.outcomes, run.elapsed, settings.args.clone());
    let stamp = inv.started_at.format("%Y%m%dT%H%M%S%.6fZ");
    let path = settings.target_dir().join("run_results.json");
    crate::failpoint::hit("artifacts.write")
        .and_then(|()| artifacts::write_json(&path, &run_results))
        .map_err(|source| Error::Io { path: path.clone(), source })?;
    let text = artifacts::json_bytes(&run_results);
    for rel in ["_wh/run_results.json".to_string(), format!("_wh/runs/{stamp}_{}.json", inv.id)] {
        if let Err(e) = warehouse.put(&rel, text.clone()).await {
            unrecorded.push(format!("cannot write `{}`: {e}", warehouse.location(&rel)));
        }
    }
    Ok(unrecorded)
}

/// Writes the run's OpenLineage events and sends them to
/// `$OPENLINEAGE_URL`; lineage delivery does not fail a data build.
pub(super) fn emit_lineage(settings: &Settings, run: &Finished<'_>, lineage: &ProjectLineage) {
    let p = run.p;
    let ol = RunContext {
        compiled: &p.compiled,
        lineage,
        warehouse: &p.ctx.warehouse,
        invocation_id: &p.inv.id,
        started_at: p.inv.started_at,
        namespace: format!("wh://{}/{}", p.compiled.project_name, settings.project.target.name),
    };
    let events = openlineage::events(&ol, &run.output.models, &run.output.other_assertions, chrono::Utc::now());
    match openlineage::emit(&events, &settings.target_dir().join("openlineage.jsonl")) {
        Ok(0) => {}
        Ok(n) => settings.log(format!("Sent {n} OpenLineage events to $OPENLINEAGE_URL")),
        Err(e) => eprintln!("warning: OpenLineage events not delivered: {e}"),
    }
}

/// Writes `target/catalog.json` from the published Parquet footers.
pub(super) async fn write_catalog(
    settings: &Settings,
    compiled: &Compiled,
    warehouse: &Warehouse,
    inv: &Invocation,
) -> Result<(), Error> {
    let generated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let footers = crate::catalog::footers(compiled, warehouse).await;
    let catalog = crate::catalog::catalog(compiled, &footers, &generated, &inv.id);
    let path = settings.target_dir().join("catalog.json");
    artifacts::write_json(&path, &catalog).map_err(|source| Error::Io { path: path.clone(), source })
}

/// Sends the run's summary to the project's alert webhook or command;
/// stale sources make it at least a warning.
pub(super) fn send_alerts(settings: &Settings, run: &Finished<'_>, stale: &[serde_json::Value]) {
    let alerts = &settings.project.alerts;
    if alerts.webhook.is_none() && alerts.webhook_env.is_none() && alerts.command.is_none() {
        return;
    }
    let models = &run.output.models;
    if stale.is_empty() && crate::alerts::only_ongoing(models, &run.outcomes) {
        settings.log("No alert sent: the anomalies go on from the last alert and are not worse");
        return;
    }
    let mut summary =
        crate::alerts::summary(&run.p.inv, models, &run.outcomes, run.elapsed, &run.p.ctx.warehouse.display());
    let mut level = crate::alerts::level(models, &run.outcomes);
    if !stale.is_empty() {
        if level == AlertOn::Success {
            level = AlertOn::Warning;
            summary["status"] = serde_json::json!("warning");
        }
        summary["stale_sources"] = serde_json::json!(stale);
    }
    match alerts.report_url.as_deref() {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            summary["report_url"] = serde_json::json!(url);
        }
        Some(url) => eprintln!(
            "warning: `alerts.report_url` in wh_project.yml is `{url}`, not an http(s) URL: the alert carries no \
             report link\n  hint: give the address where the team publishes `wh report`'s page, https://..."
        ),
        None => {}
    }
    for problem in crate::alerts::send(alerts, &summary, level, &settings.project.root) {
        eprintln!("warning: {problem}");
    }
}
