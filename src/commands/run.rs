//! `wh run`: run the selected models in DAG order, publish each table, and
//! record what happened in `target/` and `warehouse/_wh/`.

use std::process::ExitCode;
use std::time::Instant;

use super::{compile_project, Settings};
use crate::artifacts::{self, Invocation};
use crate::commands::compile::write_compiled;
use crate::diagnostic::render_location;
use crate::error::Error;
use crate::exec::publish::remove_leftovers;
use crate::exec::runner::{self, NodeResult, RunPlan, Status};
use crate::exec::Engine;
use crate::graph::selector;

/// Runs the selected models; exit code 1 if any failed.
pub async fn execute(settings: &Settings, command: &str) -> Result<ExitCode, Error> {
    let clock = Instant::now();
    let (compiled, graph) = compile_project(settings)?;
    let selected = selector::select(&compiled, &graph, &settings.select, &settings.exclude)?;
    let warehouse = settings.warehouse()?;
    let inv = Invocation::new(command, &compiled.project_name, &settings.project.target.name);
    write_compiled(settings, &inv, &compiled)?;

    let removed = remove_leftovers(&warehouse);
    if removed > 0 {
        settings.log(format!("Removed {removed} temporary file(s) left by an interrupted run"));
    }
    let threads = settings.project.target.threads;
    settings.log(format!(
        "Running {} of {} models with {} thread(s), target `{}` -> {}",
        selected.len(),
        compiled.models.len(),
        threads,
        settings.project.target.name,
        settings.project.target.warehouse,
    ));

    let total = selected.len();
    let width = selected.iter().map(String::len).max().unwrap_or(0);
    let mut done = 0;
    let mut report = |r: &NodeResult| {
        done += 1;
        let status = match r.status {
            Status::Success => "OK",
            Status::Error => "ERROR",
            Status::Skipped => "SKIP",
        };
        let detail = match (r.status, r.rows) {
            (Status::Success, Some(1)) => format!("{:>12} row ", 1),
            (Status::Success, Some(rows)) => format!("{:>12} rows", thousands(rows)),
            _ => format!("{:>17}", ""),
        };
        settings.log(format!(
            "{done:>4} of {total} {status:<5} {:<width$}  {:<9} {detail} {:>8.2}s",
            r.name,
            r.materialized.as_str(),
            r.seconds
        ));
    };
    let plan = RunPlan {
        compiled: &compiled,
        graph: &graph,
        selected: &selected,
        engine: Engine::new(None),
        warehouse: warehouse.clone(),
        compiled_dir: settings.project.target_path.join("compiled"),
        threads,
    };
    let results = runner::run(plan, &mut report).await;
    let elapsed = clock.elapsed().as_secs_f64();

    let run_results = artifacts::run_results(&inv, &results, elapsed, settings.args.clone());
    let stamp = inv.started_at.format("%Y%m%dT%H%M%S%.6fZ");
    for path in [
        settings.target_dir().join("run_results.json"),
        warehouse.join("_wh").join("run_results.json"),
        warehouse.join("_wh").join("runs").join(format!("{stamp}_{}.json", inv.id)),
    ] {
        artifacts::write_json(&path, &run_results).map_err(|source| Error::Io { path: path.clone(), source })?;
    }

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
    settings.log(format!("\nFinished in {elapsed:.2}s: {ok} ok, {errors} error(s), {skipped} skipped"));
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
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
