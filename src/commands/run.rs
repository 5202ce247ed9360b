//! `wh run` and `wh build`: run the selected models in DAG order, publish
//! each table (after its assertions pass, for build), and record what
//! happened in `target/` and `warehouse/_wh/`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::{compile_project, test, Settings};
use crate::artifacts::{self, Invocation};
use crate::cli::LogFormat;
use crate::commands::compile::write_compiled;
use crate::diagnostic::render_location;
use crate::error::Error;
use crate::exec::runner::{self, RunPlan, Status};
use crate::freshness::FreshStatus;
use crate::project::config::{AlertOn, StalePolicy};
use crate::quality::Status as TestStatus;
use crate::state;
use crate::storage::{LockError, Warehouse, WarehouseLock};

/// Runs the selected models; `audit` runs their assertions before
/// publishing. Exit code 1 if a model or an error-severity assertion failed.
pub async fn execute(
    settings: &Settings,
    command: &str,
    audit: bool,
    junit: Option<&Path>,
    full_refresh: bool,
) -> Result<ExitCode, Error> {
    let clock = Instant::now();
    let (compiled, graph) = compile_project(settings)?;
    let selected = settings.selected(&compiled, &graph)?;
    let warehouse = settings.reachable_warehouse().await?;
    let inv = Invocation::new(command, &settings.project);
    // One build or run at a time per warehouse: taken before anything is
    // cleaned or written, freed whatever the outcome.
    let lock = take_lock(settings, &warehouse, &inv).await?;
    let prepared = Prepared { clock, compiled, graph, selected, warehouse, inv, full_refresh };
    let result = locked(settings, audit, junit, prepared).await;
    lock.release().await;
    result
}

/// `wh retry`: runs again, with the same command (`build` or `run`), the
/// models that failed or were skipped in the last run recorded in the
/// target path (or `--state`).
pub async fn retry(mut settings: Settings) -> Result<ExitCode, Error> {
    let previous = settings.previous();
    let Some(results) = previous.run_results else {
        return Err(Error::Usage {
            message: format!("there is no run to retry: no run_results.json in `{}`", previous.dir),
            hint: Some("run `wh build` first".into()),
        });
    };
    let command = results["args"]["which"].as_str().unwrap_or_default().to_string();
    if command != "build" && command != "run" {
        return Err(Error::Usage {
            message: format!("the last run was `wh {command}`: `wh retry` reruns a `wh build` or `wh run`"),
            hint: Some("rerun failed assertions with `wh test --select result:fail`".into()),
        });
    }
    let names: Vec<String> = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["resource_type"] != "test" && (r["status"] == "error" || r["status"] == "skipped"))
        .filter_map(|r| r["unique_id"].as_str()?.rsplit('.').next().map(str::to_string))
        .collect();
    if names.is_empty() {
        settings.log(format!("Nothing to retry: every model of the last `wh {command}` succeeded"));
        return Ok(ExitCode::SUCCESS);
    }
    settings.log(format!("Retrying {} model(s) of the last `wh {command}`: {}", names.len(), names.join(", ")));
    settings.select = crate::graph::selector::parse(&names)?;
    settings.args["which"] = serde_json::json!(command);
    settings.args["select"] = serde_json::json!(settings.select.to_string());
    settings.exclude = crate::graph::selector::Selection(Vec::new());
    execute(&settings, &command, command == "build", None, false).await
}

/// Takes the warehouse lock, or says which run holds it.
pub(crate) async fn take_lock(
    settings: &Settings,
    warehouse: &Warehouse,
    inv: &Invocation,
) -> Result<WarehouseLock, Error> {
    let holder = serde_json::json!({
        "run_id": inv.id,
        "command": inv.command,
        "user": inv.user,
        "host": inv.host,
        "pid": std::process::id(),
        "started_at": inv.started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let describe = |h: &serde_json::Value| {
        let s = |k: &str| h[k].as_str().unwrap_or("?").to_string();
        format!(
            "run {} (`wh {}` by {}@{}, process {}, started {})",
            s("run_id"),
            s("command"),
            s("user"),
            s("host"),
            h["pid"].as_u64().map_or("?".to_string(), |p| p.to_string()),
            s("started_at")
        )
    };
    match warehouse.lock(&holder).await {
        Ok((lock, recovered)) => {
            if let Some(old) = recovered {
                settings.log(format!("Recovered the warehouse lock left by {}: its process is gone", describe(&old)));
            }
            Ok(lock)
        }
        Err(LockError::Held { holder, location }) => Err(Error::Usage {
            message: format!("the warehouse {} is locked by {}", warehouse.display(), describe(&holder)),
            hint: Some(format!(
                "wait for that run to finish; if its process is gone and it ran on another machine, delete {location}"
            )),
        }),
        Err(LockError::Io(e)) => Err(Error::Usage {
            message: format!("cannot lock the warehouse {}: {e}", warehouse.display()),
            hint: Some(format!("wh needs to create `{}` in the warehouse", crate::storage::LOCK)),
        }),
    }
}

/// What a run has resolved before it takes the lock.
struct Prepared {
    clock: Instant,
    compiled: crate::compile::Compiled,
    graph: crate::graph::Graph,
    selected: std::collections::BTreeSet<String>,
    warehouse: Warehouse,
    inv: Invocation,
    full_refresh: bool,
}

/// The run itself, with the warehouse lock held.
async fn locked(settings: &Settings, audit: bool, junit: Option<&Path>, p: Prepared) -> Result<ExitCode, Error> {
    let Prepared { clock, compiled, graph, selected, warehouse, inv, full_refresh } = p;
    let stores = settings.stores(&compiled, &warehouse)?;
    // Column lineage for the manifest: planning only, sources give schemas.
    let lineage = crate::lineage::project_lineage(&compiled, &graph, settings.session(&stores, Some(1))).await;
    write_compiled(settings, &inv, &compiled, Some(&lineage))?;
    // What cannot be planned is said before anything runs (an unknown
    // function, a column that does not exist), not found halfway.
    let doomed: Vec<String> = lineage
        .unresolved
        .iter()
        .filter(|(name, _)| selected.contains(*name))
        .map(|(name, reason)| format!("  {name}: {}", reason.lines().next().unwrap_or_default()))
        .collect();
    if !doomed.is_empty() {
        settings.log(format!(
            "warning: {} selected model(s) cannot be planned and will fail (see `wh debug --compat`):\n{}",
            doomed.len(),
            doomed.join("\n")
        ));
    }

    // Delta tables need the `delta` feature: without it, nothing runs.
    if !cfg!(feature = "delta") {
        let delta: Vec<String> = selected
            .iter()
            .filter(|m| compiled.models[*m].is_delta())
            .map(|m| format!("  {m}: writes a Delta table\n    --> {}", compiled.models[m].path.display()))
            .collect();
        if !delta.is_empty() {
            return Err(Error::Usage {
                message: format!(
                    "{} selected model(s) need Delta Lake, and {}; nothing was built:\n{}",
                    delta.len(),
                    crate::storage::NO_DELTA,
                    delta.join("\n")
                ),
                hint: Some(crate::storage::ALL_FEATURES_HINT.into()),
            });
        }
    }

    // What a cluster cannot run stops the build before anything runs.
    if matches!(settings.project.target.engine, crate::project::EngineChoice::Ballista { .. }) {
        let refused = crate::exec::cluster::unsupported(&compiled, &selected, &lineage);
        if !refused.is_empty() {
            let lines: Vec<String> = refused
                .iter()
                .map(|(m, why)| format!("  {m}: {why}\n    --> {}", compiled.models[m].path.display()))
                .collect();
            return Err(Error::Usage {
                message: format!(
                    "{} selected model(s) cannot run on Ballista; nothing was built:\n{}",
                    refused.len(),
                    lines.join("\n")
                ),
                hint: Some("build them with --engine local, or leave them out (--exclude)".into()),
            });
        }
    }
    let removed = warehouse.remove_leftovers();
    if removed > 0 {
        settings.log(format!("Removed {removed} temporary file(s) left by an interrupted run"));
    }
    // Under a memory limit each running model gets a fair share of the
    // pool: at most two at once, so that a share still holds a sort's merge
    // (four at once failed the scale-30 RFM mart under 1 GB).
    let threads = match settings.memory_limit {
        Some(_) => settings.project.target.threads.min(2),
        None => settings.project.target.threads,
    };
    settings.log(format!(
        "Running {} of {} models with {} thread(s), target `{}` -> {}{}",
        selected.len(),
        compiled.models.len(),
        threads,
        settings.project.target.name,
        settings.project.target.warehouse,
        match &settings.project.target.engine {
            crate::project::EngineChoice::Local => String::new(),
            crate::project::EngineChoice::Ballista { scheduler: None, .. } =>
                ", on Ballista (in-process cluster)".into(),
            crate::project::EngineChoice::Ballista { scheduler: Some(s), .. } => format!(", on Ballista at {s}"),
        }
    ));

    let total = selected.len();
    let width = selected.iter().map(String::len).max().unwrap_or(0);
    let mut done = 0;
    // On a terminal, a progress bar under the model lines; plain lines
    // otherwise (a file, a pipe, --quiet, --log-format json).
    let bar = settings.progress_bar(total as u64);
    let mut running: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut report = |event: runner::Event| {
        let r = match event {
            runner::Event::Started(name) => {
                running.insert(name.to_string());
                if let Some(bar) = &bar {
                    bar.set_message(progress_message(&running, total - done - running.len()));
                }
                return;
            }
            runner::Event::Finished(r) => r,
        };
        running.remove(&r.name);
        done += 1;
        let status = match r.status {
            Status::Success if r.reused => "REUSE",
            Status::Success => "OK",
            Status::Error => "ERROR",
            Status::Skipped => "SKIP",
        };
        let detail = match (r.status, r.rows, r.merged) {
            _ if r.reused => format!("{:>17}", "up to date"),
            (Status::Success, Some(rows), Some(new)) => format!("{:>12} rows, {} new", thousands(rows), thousands(new)),
            (Status::Success, Some(1), None) => format!("{:>12} row ", 1),
            (Status::Success, Some(rows), None) => format!("{:>12} rows", thousands(rows)),
            _ => format!("{:>17}", ""),
        };
        let warned = r.assertions.iter().filter(|o| o.status == TestStatus::Warn).count();
        let failed = r.assertions.iter().filter(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error)).count();
        let checks = match r.assertions.len() {
            0 => String::new(),
            n => format!(
                "  [{n} check{}: {} pass, {warned} warn, {failed} fail]",
                if n == 1 { "" } else { "s" },
                n - warned - failed
            ),
        };
        let spilled = match r.spilled_bytes {
            0 => String::new(),
            n => format!("  (spilled {})", megabytes(n)),
        };
        let line = format!(
            "{done:>4} of {total} {status:<5} {:<width$}  {:<9} {detail} {:>8.2}s{checks}{spilled}",
            r.name,
            r.materialized.as_str(),
            r.seconds
        );
        match &bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
                bar.set_message(progress_message(&running, total - done - running.len()));
            }
            None if settings.log_format == LogFormat::Json => settings.event(serde_json::json!({
                "event": "model_finished",
                "index": done,
                "total": total,
                "model": r.name,
                "materialized": r.materialized.as_str(),
                "status": status.to_lowercase(),
                "rows": r.rows,
                "new_rows": r.merged,
                "seconds": (r.seconds * 1000.0).round() / 1000.0,
                "checks": {"run": r.assertions.len(), "warn": warned, "fail": failed},
                "spilled_bytes": r.spilled_bytes,
                "message": r.message,
            })),
            None => settings.log(line),
        }
    };
    // What is enforced when each model is written: masks of classified
    // columns, consent, forgotten identifiers.
    let classes = crate::lineage::classify::propagate(&compiled, &graph, &lineage, &settings.project.classification);
    let policies = crate::exec::policy::policies(&settings.project, &compiled, &classes);
    // The forgotten list is read only when a model filters by it.
    let filters_forgotten = policies.values().any(|p| !p.forget.is_empty());
    let forgotten = match filters_forgotten {
        true => match warehouse.get(crate::exec::policy::FORGOTTEN_FILE).await {
            Ok(Some(bytes)) => Some(crate::state::digest(&bytes)),
            _ => None,
        },
        false => None,
    };
    let extra: std::collections::BTreeMap<String, String> = policies
        .iter()
        .map(|(name, p)| {
            let forgotten = if p.forget.is_empty() { None } else { forgotten.as_deref() };
            (name.clone(), format!("{p:?} forgotten {forgotten:?}"))
        })
        .collect();
    // Up-to-date tables are reused, not rebuilt (see state.rs).
    let fingerprints = state::fingerprints(&compiled, &graph, &stores, &extra).await;
    let mut recorded = state::load(&warehouse).await;
    let mut compiled = compiled;
    state::fill_volume_baselines(&mut compiled.assertions, &recorded);
    let reuse = if full_refresh {
        Default::default()
    } else {
        state::reusable(&compiled, &selected, &fingerprints, &recorded, &warehouse, audit).await
    };
    if !reuse.is_empty() {
        settings.log(format!(
            "{} of {} selected models are up to date and will not be rebuilt (--full-refresh rebuilds them)",
            reuse.len(),
            selected.len()
        ));
    }
    // Sources past their freshness thresholds warn, or (on-stale-source:
    // skip) keep their readers from running.
    let mut stale_sources = std::collections::BTreeMap::new();
    let mut stale_report = Vec::new();
    if compiled.sources.values().any(|s| s.table.freshness.is_some() && s.table.loaded_at_field.is_some()) {
        let engine = settings.executor(&stores, &warehouse, None).await?;
        let results = super::source::check(settings, &compiled, engine, &inv.id, clock).await?;
        for f in results.iter().filter(|f| f.status != FreshStatus::Pass) {
            let skip = settings.project.on_stale_source == StalePolicy::Skip
                && matches!(f.status, FreshStatus::Error | FreshStatus::RuntimeError);
            settings.log(format!(
                "{}: source `{}` freshness {}: {}{}",
                if f.status == FreshStatus::Warn { "warning" } else { "error" },
                f.source,
                f.status.as_str(),
                f.message,
                if skip { "; its readers are skipped" } else { "" }
            ));
            if skip {
                stale_sources.insert(f.source.clone(), f.message.clone());
            }
            stale_report
                .push(serde_json::json!({"source": f.source, "status": f.status.as_str(), "message": f.message}));
        }
    }
    let engine = settings.executor(&stores, &warehouse, None).await?;
    let scratch = engine.clone();
    if filters_forgotten {
        let location = forgotten.as_ref().map(|_| warehouse.location(crate::exec::policy::FORGOTTEN_FILE));
        engine.register_forgotten(location.as_deref()).await.map_err(|e| Error::Usage {
            message: format!("cannot read the forgotten identifiers: {e}"),
            hint: Some(format!("`{}` in the warehouse is written by `wh forget`", crate::exec::policy::FORGOTTEN_FILE)),
        })?;
    }
    let plan = RunPlan {
        compiled: &compiled,
        graph: &graph,
        selected: &selected,
        engine,
        policies,
        warehouse: warehouse.clone(),
        compiled_dir: settings.project.target_path.join("compiled"),
        threads,
        audit,
        run_id: inv.id.clone(),
        reuse,
        stale_sources,
        full_refresh,
        now: settings.project.run_started_at,
    };
    let output = runner::run(plan, &mut report).await;
    scratch.remove_scratch().await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let outcomes = output.all_assertions();
    let elapsed = clock.elapsed().as_secs_f64();

    // The run's records in the warehouse: a failure to write them (the
    // store went away) is reported and fails the run, after the rest.
    let mut unrecorded: Vec<String> = Vec::new();
    for r in &output.models {
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
    if let Err(e) = state::save(&warehouse, &recorded).await {
        unrecorded.push(format!("cannot write `{}`: {e}", warehouse.location(state::STATE)));
    }
    if let Err(e) = test::record(settings, &compiled, &warehouse, &inv, &outcomes).await {
        unrecorded
            .push(crate::error::render(&e, &settings.project.root).trim().trim_start_matches("error: ").to_string());
    }
    let run_results = artifacts::run_results(&inv, &output.models, &outcomes, elapsed, settings.args.clone());
    let stamp = inv.started_at.format("%Y%m%dT%H%M%S%.6fZ");
    let path = settings.target_dir().join("run_results.json");
    artifacts::write_json(&path, &run_results).map_err(|source| Error::Io { path: path.clone(), source })?;
    let text = artifacts::json_bytes(&run_results);
    for rel in ["_wh/run_results.json".to_string(), format!("_wh/runs/{stamp}_{}.json", inv.id)] {
        if let Err(e) = warehouse.put(&rel, text.clone()).await {
            unrecorded.push(format!("cannot write `{}`: {e}", warehouse.location(&rel)));
        }
    }
    if let Some(path) = junit {
        test::write_junit(path, &inv, &output.models, &outcomes)?;
    }
    let ol = crate::lineage::openlineage::RunContext {
        compiled: &compiled,
        lineage: &lineage,
        warehouse: &warehouse,
        invocation_id: &inv.id,
        started_at: inv.started_at,
        namespace: format!("wh://{}/{}", compiled.project_name, settings.project.target.name),
    };
    let events = crate::lineage::openlineage::events(&ol, &output.models, &output.other_assertions, chrono::Utc::now());
    match crate::lineage::openlineage::emit(&events, &settings.target_dir().join("openlineage.jsonl")) {
        Ok(0) => {}
        Ok(n) => settings.log(format!("Sent {n} OpenLineage events to $OPENLINEAGE_URL")),
        // Lineage delivery must not fail a data build: warn and go on.
        Err(e) => eprintln!("warning: OpenLineage events not delivered: {e}"),
    }
    let generated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let footers = crate::catalog::footers(&compiled, &warehouse).await;
    let catalog = crate::catalog::catalog(&compiled, &footers, &generated, &inv.id);
    let path = settings.target_dir().join("catalog.json");
    artifacts::write_json(&path, &catalog).map_err(|source| Error::Io { path: path.clone(), source })?;

    let results = &output.models;
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (ok, errors, skipped) = (count(Status::Success), count(Status::Error), count(Status::Skipped));
    for r in results.iter().filter(|r| r.status == Status::Error) {
        if let Some(f) = &r.failure {
            let mut block = format!("\nerror: {}\n", f.message);
            if let Some(loc) = &f.location {
                block.push_str(&render_location(loc, &settings.project.root));
            }
            if let Some(h) = &f.hint {
                block.push_str(&format!("  hint: {h}\n"));
            }
            eprint!("{block}");
        }
    }
    let failed_checks = test::summarize(settings, &outcomes);
    let reused = results.iter().filter(|r| r.reused).count();
    let spilled: usize = results.iter().map(|r| r.spilled_bytes).sum();
    let spill_note = match (settings.memory_limit, spilled) {
        (Some(limit), 0) => format!("; nothing spilled under the {} memory limit", megabytes(limit)),
        (Some(limit), n) => format!("; {} spilled to disk under the {} memory limit", megabytes(n), megabytes(limit)),
        (None, _) => String::new(),
    };
    settings.log(format!(
        "\nFinished in {elapsed:.2}s: {} built, {reused} up to date, {errors} error(s), {skipped} skipped{spill_note}",
        ok - reused
    ));
    // Failed assertions on models already count as model errors; those that
    // ran on sources or after the models are counted here.
    let late_failures =
        output.other_assertions.iter().any(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error));
    for e in &unrecorded {
        eprintln!("error: the run's records are incomplete: {e}");
    }
    let failed = errors > 0 || late_failures || (failed_checks > 0 && !audit) || !unrecorded.is_empty();
    let alerts = &settings.project.alerts;
    if alerts.webhook.is_some() || alerts.webhook_env.is_some() || alerts.command.is_some() {
        let mut summary = crate::alerts::summary(&inv, &output.models, &outcomes, elapsed, &warehouse.display());
        let mut level = crate::alerts::level(&output.models, &outcomes);
        if !stale_report.is_empty() {
            // Stale data is at least a warning.
            if level == AlertOn::Success {
                level = AlertOn::Warning;
                summary["status"] = serde_json::json!("warning");
            }
            summary["stale_sources"] = serde_json::json!(stale_report);
        }
        for problem in crate::alerts::send(alerts, &summary, level, &settings.project.root) {
            eprintln!("warning: {problem}");
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Formats 1234567 as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The progress bar's message: what runs, and how many wait.
fn progress_message(running: &std::collections::BTreeSet<String>, remaining: usize) -> String {
    let names: Vec<&str> = running.iter().map(String::as_str).take(3).collect();
    let more = if running.len() > 3 { format!(" +{}", running.len() - 3) } else { String::new() };
    format!("{} running ({}{more}), {remaining} remaining", running.len(), names.join(", "))
}

/// Formats bytes as megabytes (10^6), e.g. `1,234.5 MB`.
fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
