//! `wh run` and `wh build`: run the selected models in DAG order, publish
//! each table (after its assertions pass, for build), and record what
//! happened in `target/` and `warehouse/_wh/`.

mod progress;
mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use super::context::Context;
use super::{compile_project, test, Settings};
use crate::artifacts::Invocation;
use crate::commands::compile::write_compiled;
use crate::compile::Compiled;
use crate::error::Error;
use crate::exec::Engine;
use crate::freshness::FreshStatus;
use crate::graph::Graph;
use crate::lineage::ProjectLineage;
use crate::pipeline::{self as runner, RunPlan};
use crate::policy::WritePolicy;
use crate::project::config::{Hook, StalePolicy};
use crate::project::EngineChoice;
use crate::quality::run::Outcome;
use crate::quality::Status as TestStatus;
use crate::results::{RunOutput, Status};
use crate::state;
use crate::storage::{LockError, Warehouse, WarehouseLock};
use progress::{megabytes, Progress};

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
    let ctx = Context::reachable(settings, &compiled).await?;
    let inv = Invocation::new(command, &settings.project);
    // One build or run at a time per warehouse: taken before anything is
    // cleaned or written, freed whatever the outcome.
    let lock = take_lock(settings, &ctx.warehouse, &inv).await?;
    let prepared = Prepared { clock, compiled, graph, selected, ctx, inv, full_refresh };
    let result = locked(settings, audit, junit, prepared).await;
    lock.release().await;
    result
}

/// `wh retry`: runs again, with the same command (`build` or `run`), the
/// models that failed or were skipped in the last run recorded in the
/// target path (or `--state`).
pub async fn retry(mut settings: Settings) -> Result<ExitCode, Error> {
    let previous = settings.previous();
    let Some(results) = previous.run_results.get()? else {
        return Err(Error::Usage {
            message: format!("there is no run to retry: no run_results.json in `{}`", previous.dir.display()),
            hint: Some("run `wh build` first".into()),
        });
    };
    let command = results.args.which.clone();
    if command != "build" && command != "run" {
        return Err(Error::Usage {
            message: format!("the last run was `wh {command}`: `wh retry` reruns a `wh build` or `wh run`"),
            hint: Some("rerun failed assertions with `wh test --select result:fail`".into()),
        });
    }
    let names: Vec<String> = results
        .results
        .iter()
        .filter(|r| !r.is_test() && (r.status == "error" || r.status == "skipped"))
        .filter_map(|r| r.unique_id.rsplit('.').next().map(str::to_string))
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
            if let Err(e) = roll_forward(settings, warehouse).await {
                lock.release().await;
                return Err(e);
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

/// Completes the publishing step of a run that was interrupted in it.
async fn roll_forward(settings: &Settings, warehouse: &Warehouse) -> Result<(), Error> {
    let done = match crate::failpoint::hit("lock.taken") {
        Ok(()) => warehouse.roll_forward().await,
        Err(e) => Err(e),
    };
    match done {
        Ok(None) => Ok(()),
        Ok(Some(done)) => {
            settings.log(format!(
                "Completed the publishing of run {} (interrupted in it): {} file(s) put in place",
                done.run_id, done.published
            ));
            Ok(())
        }
        Err(e) => Err(Error::Usage {
            message: format!("cannot complete the interrupted publishing step in {}: {e}", warehouse.display()),
            hint: Some(format!(
                "nothing was built; check that `{}` is readable and the warehouse writable, then rerun",
                warehouse.location(crate::storage::JOURNAL)
            )),
        }),
    }
}

/// What a run has resolved before it takes the lock.
struct Prepared {
    clock: Instant,
    compiled: Compiled,
    graph: Graph,
    selected: BTreeSet<String>,
    /// The warehouse and stores, and how engines are made.
    ctx: Context,
    inv: Invocation,
    full_refresh: bool,
}

/// The run itself, with the warehouse lock held.
async fn locked(settings: &Settings, audit: bool, junit: Option<&Path>, mut p: Prepared) -> Result<ExitCode, Error> {
    // Column lineage for the manifest: planning only, sources give schemas.
    let lineage = p.ctx.lineage(&p.compiled, &p.graph).await;
    write_compiled(settings, &p.inv, &p.compiled, Some(&lineage))?;
    warn_unplannable(settings, &p, &lineage);
    refuse_unrunnable(settings, &p, &lineage)?;
    let threads = announce(settings, &p).await;
    let policies = Policies::resolve(settings, &p, &lineage).await;
    // Up-to-date tables are reused, not rebuilt (see state.rs).
    let fingerprints = state::fingerprints(&p.compiled, &p.graph, &p.ctx.stores, &policies.fingerprint_extra()).await;
    let recorded = state::load(&p.ctx.warehouse).await;
    state::fill_volume_baselines(&mut p.compiled.assertions, &recorded);
    let reuse = reusable(settings, &p, &fingerprints, &recorded, audit).await;
    let stale = check_sources(settings, &p).await?;
    let engine = p.ctx.engine(None).await?;
    let now = settings.project.run_started_at;
    crate::quality::monitor::prepare(&engine, &p.ctx.warehouse, &mut p.compiled.assertions, now, p.full_refresh).await;
    let scratch = engine.clone();
    policies.register(&engine, &p.ctx.warehouse).await?;
    // A failing on-run-start hook stops the run before any model.
    run_project_hooks(&engine, "on-run-start", &p.compiled.on_run_start, settings).await?;
    let hooks_engine = engine.clone();
    let plan = RunPlan {
        compiled: &p.compiled,
        graph: &p.graph,
        selected: &p.selected,
        engine,
        policies: policies.by_model,
        warehouse: p.ctx.warehouse.clone(),
        compiled_dir: settings.project.target_path.join("compiled"),
        threads,
        audit,
        unit_tests: audit && settings.test_types().allows(crate::compile::unit_tests::UNIT_KIND),
        run_id: p.inv.id.clone(),
        reuse,
        stale_sources: stale.skipped,
        full_refresh: p.full_refresh,
        now: settings.project.run_started_at,
    };
    let mut progress = Progress::new(settings, &p.selected);
    let output = runner::run(plan, &mut |event| progress.on(event)).await;
    scratch.remove_scratch().await;
    progress.finish();
    let run = Finished {
        p: &p,
        output: &output,
        outcomes: output.all_assertions(),
        elapsed: p.clock.elapsed().as_secs_f64(),
    };
    let unrecorded = record::record(settings, &run, &fingerprints, recorded, audit).await?;
    if let Some(path) = junit {
        test::write_junit(path, &p.inv, &output.models, &run.outcomes)?;
    }
    record::emit_lineage(settings, &run, &lineage);
    record::write_catalog(settings, &p.compiled, &p.ctx.warehouse, &p.inv).await?;
    let failed = summarize(settings, &run, &unrecorded, audit);
    record::send_alerts(settings, &run, &stale.report);
    // `results` is built only for a project that has on-run-end hooks.
    let on_run_end = match settings.project.on_run_end.is_empty() {
        true => Vec::new(),
        false => crate::compile::render_run_end(&settings.project, &hook_results(&output))?,
    };
    run_project_hooks(&hooks_engine, "on-run-end", &on_run_end, settings).await?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Runs `on-run-start` or `on-run-end`: the first that fails is the error
/// (exit 1), at the line it was written on.
async fn run_project_hooks(engine: &Engine, kind: &str, hooks: &[Hook], settings: &Settings) -> Result<(), Error> {
    let file = Path::new(settings.project.file_name);
    runner::run_hooks(engine, &format!("{kind} hook"), hooks, file).await.map_err(Error::Hook)
}

/// dbt's `results` for `on-run-end`: every model's and test's result.
fn hook_results(output: &RunOutput) -> serde_json::Value {
    let node =
        |name: &str, unique_id: &str, kind: &str| json!({"name": name, "unique_id": unique_id, "resource_type": kind});
    let models = output.models.iter().map(|m| {
        json!({
            "status": m.status.as_str(),
            "message": m.message,
            "execution_time": m.seconds,
            "failures": null,
            "adapter_response": {"rows_affected": m.rows},
            "node": node(&m.name, &m.unique_id, m.unique_id.split('.').next().unwrap_or("model")),
        })
    });
    let tests = output.all_assertions().into_iter().map(|o| {
        json!({
            "status": o.status.as_str(),
            "message": o.message,
            "execution_time": o.seconds,
            "failures": o.failing,
            "adapter_response": {},
            "node": node(&o.assertion.name, &o.assertion.unique_id, "test"),
        })
    });
    serde_json::Value::Array(models.chain(tests).collect())
}

/// A finished run, for what records and reports it.
struct Finished<'a> {
    p: &'a Prepared,
    output: &'a RunOutput,
    outcomes: Vec<&'a Outcome>,
    elapsed: f64,
}

/// Says before anything runs what cannot be planned (an unknown function,
/// a column that does not exist), rather than finding it halfway.
fn warn_unplannable(settings: &Settings, p: &Prepared, lineage: &ProjectLineage) {
    let doomed: Vec<String> = lineage
        .unresolved
        .iter()
        .filter(|(name, _)| p.selected.contains(*name))
        .map(|(name, reason)| format!("  {name}: {}", reason.lines().next().unwrap_or_default()))
        .collect();
    if !doomed.is_empty() {
        let hooks = match p.compiled.has_hooks() {
            true => format!("\n  (this project has hooks: {})", crate::compile::HOOKS_PLANNING_NOTE),
            false => String::new(),
        };
        settings.log(format!(
            "warning: {} selected model(s) cannot be planned and will fail (see `wh debug --compat`):\n{}{hooks}",
            doomed.len(),
            doomed.join("\n")
        ));
    }
}

/// Stops the build before anything runs when a selected model needs what
/// this wh or its engine cannot give: Delta Lake without the `delta`
/// feature, or what a Ballista cluster cannot run.
fn refuse_unrunnable(settings: &Settings, p: &Prepared, lineage: &ProjectLineage) -> Result<(), Error> {
    let models = &p.compiled.models;
    let outside: Vec<(&String, String)> =
        p.selected.iter().filter_map(|m| Some((m, p.ctx.warehouse.escapes(&models[m].output_path()?)?))).collect();
    refuse(
        p,
        outside,
        "would write outside the warehouse",
        "replace the link with a folder inside the warehouse, or point the target elsewhere",
    )?;
    if !cfg!(feature = "delta") {
        let delta = p.selected.iter().filter(|m| models[*m].is_delta()).map(|m| (m, "writes a Delta table".into()));
        let what = format!("need Delta Lake, and {}", crate::storage::NO_DELTA);
        refuse(p, delta.collect(), &what, crate::storage::ALL_FEATURES_HINT)?;
    }
    if !matches!(settings.project.target.engine, EngineChoice::Ballista { .. }) {
        return Ok(());
    }
    let refused = crate::exec::cluster::unsupported(&p.compiled, &p.selected, &lineage.depths);
    let refused = refused.iter().map(|(m, why)| (m, why.clone())).collect();
    refuse(p, refused, "cannot run on Ballista", "build them with --engine local, or leave them out (--exclude)")
}

/// Fails when any selected model is refused: one line per model with its
/// reason and file, and `nothing was built`.
fn refuse(p: &Prepared, refused: Vec<(&String, String)>, what: &str, hint: &str) -> Result<(), Error> {
    if refused.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = refused
        .iter()
        .map(|(m, why)| format!("  {m}: {why}\n    --> {}", p.compiled.models[*m].path.display()))
        .collect();
    Err(Error::Usage {
        message: format!("{} selected model(s) {what}; nothing was built:\n{}", refused.len(), lines.join("\n")),
        hint: Some(hint.into()),
    })
}

/// Removes what an interrupted run left and says what runs where; returns
/// how many models run at once.
async fn announce(settings: &Settings, p: &Prepared) -> usize {
    let removed = p.ctx.warehouse.remove_leftovers().await;
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
    let engine = match &settings.project.target.engine {
        EngineChoice::Local => String::new(),
        EngineChoice::Ballista { scheduler: None, .. } => ", on Ballista (in-process cluster)".into(),
        EngineChoice::Ballista { scheduler: Some(s), .. } => format!(", on Ballista at {s}"),
    };
    settings.log(format!(
        "Running {} of {} models with {threads} thread(s), target `{}` -> {}{engine}",
        p.selected.len(),
        p.compiled.models.len(),
        settings.project.target.name,
        settings.project.target.warehouse,
    ));
    threads
}

/// What is enforced when each model is written: masks of classified
/// columns, consent, forgotten identifiers.
struct Policies {
    by_model: BTreeMap<String, WritePolicy>,
    /// A digest of the forgotten list, read only when a model filters by it.
    forgotten: Option<String>,
    filters_forgotten: bool,
}

impl Policies {
    async fn resolve(settings: &Settings, p: &Prepared, lineage: &ProjectLineage) -> Policies {
        let classes =
            crate::policy::classify::propagate(&p.compiled, &p.graph, lineage, &settings.project.classification);
        let by_model = crate::policy::policies(&settings.project, &p.compiled, &classes);
        let filters_forgotten = by_model.values().any(|p| !p.forget.is_empty());
        let forgotten = match filters_forgotten {
            true => match p.ctx.warehouse.get(crate::policy::FORGOTTEN_FILE).await {
                Ok(Some(bytes)) => Some(state::digest(&bytes)),
                _ => None,
            },
            false => None,
        };
        Policies { by_model, forgotten, filters_forgotten }
    }

    /// What each model's fingerprint adds for its policy.
    fn fingerprint_extra(&self) -> BTreeMap<String, String> {
        self.by_model
            .iter()
            .map(|(name, p)| {
                let forgotten = if p.forget.is_empty() { None } else { self.forgotten.as_deref() };
                (name.clone(), format!("{p:?} forgotten {forgotten:?}"))
            })
            .collect()
    }

    /// Registers the forgotten identifiers when a model filters by them.
    async fn register(&self, engine: &Engine, warehouse: &Warehouse) -> Result<(), Error> {
        if !self.filters_forgotten {
            return Ok(());
        }
        let file = crate::policy::FORGOTTEN_FILE;
        let location = self.forgotten.as_ref().map(|_| warehouse.location(file));
        crate::policy::enforce::register_forgotten(engine, location.as_deref()).await.map_err(|e| Error::Usage {
            message: format!("cannot read the forgotten identifiers: {e}"),
            hint: Some(format!("`{file}` in the warehouse is written by `wh forget`")),
        })
    }
}

/// The selected tables whose published version is up to date.
async fn reusable(
    settings: &Settings,
    p: &Prepared,
    fingerprints: &BTreeMap<String, String>,
    recorded: &BTreeMap<String, state::Entry>,
    audit: bool,
) -> BTreeSet<String> {
    if p.full_refresh {
        return BTreeSet::new();
    }
    let reuse = state::reusable(&p.compiled, &p.selected, fingerprints, recorded, &p.ctx.warehouse, audit).await;
    if !reuse.is_empty() {
        settings.log(format!(
            "{} of {} selected models are up to date and will not be rebuilt (--full-refresh rebuilds them)",
            reuse.len(),
            p.selected.len()
        ));
    }
    reuse
}

/// Sources past their freshness thresholds: reported, and under
/// `on-stale-source: skip` their readers skipped.
#[derive(Default)]
struct Stale {
    skipped: BTreeMap<String, String>,
    report: Vec<serde_json::Value>,
}

/// Checks the freshness of the sources that declare it; stale ones warn,
/// or (on-stale-source: skip) keep their readers from running.
async fn check_sources(settings: &Settings, p: &Prepared) -> Result<Stale, Error> {
    let mut stale = Stale::default();
    if !p.compiled.sources.values().any(|s| s.table.freshness.is_some() && s.table.loaded_at_field.is_some()) {
        return Ok(stale);
    }
    let engine = p.ctx.engine(None).await?;
    let results = super::source::check(settings, &p.compiled, engine, &p.inv.id, p.clock).await?;
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
            stale.skipped.insert(f.source.clone(), f.message.clone());
        }
        stale.report.push(serde_json::json!({"source": f.source, "status": f.status.as_str(), "message": f.message}));
    }
    Ok(stale)
}

/// Prints each failed model's error and the run's summary; returns whether
/// the run failed.
fn summarize(settings: &Settings, run: &Finished<'_>, unrecorded: &[String], audit: bool) -> bool {
    let results = &run.output.models;
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (ok, errors, skipped) = (count(Status::Success), count(Status::Error), count(Status::Skipped));
    for f in results.iter().filter(|r| r.status == Status::Error).filter_map(|r| r.failure.as_ref()) {
        eprint!("\n{}", f.render("error", &settings.project.root));
    }
    let failed_checks = test::summarize(settings, &run.outcomes);
    let reused = results.iter().filter(|r| r.reused).count();
    let spilled: usize = results.iter().map(|r| r.spilled_bytes).sum();
    let spill_note = match (settings.memory_limit, spilled) {
        (Some(limit), 0) => format!("; nothing spilled under the {} memory limit", megabytes(limit)),
        (Some(limit), n) => format!("; {} spilled to disk under the {} memory limit", megabytes(n), megabytes(limit)),
        (None, _) => String::new(),
    };
    settings.log(format!(
        "\nFinished in {:.2}s: {} built, {reused} up to date, {errors} error(s), {skipped} skipped{spill_note}",
        run.elapsed,
        ok - reused
    ));
    // Failed assertions on models already count as model errors; those that
    // ran on sources or after the models are counted here.
    let late_failures =
        run.output.other_assertions.iter().any(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error));
    // A failed unit test skips its model rather than failing it.
    let unit_failures = run.outcomes.iter().any(|o| {
        o.assertion.kind == crate::compile::unit_tests::UNIT_KIND
            && matches!(o.status, TestStatus::Fail | TestStatus::Error)
    });
    for e in unrecorded {
        eprintln!("error: the run's records are incomplete: {e}");
    }
    errors > 0 || late_failures || unit_failures || (failed_checks > 0 && !audit) || !unrecorded.is_empty()
}
