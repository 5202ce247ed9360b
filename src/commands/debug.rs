//! `wh debug --compat`: what `wh` will run of a project (a dbt project
//! above all), what it maps onto its own settings, what it accepts without
//! using, what it does not support, and which models cannot be planned,
//! before anything runs. Reads schemas, never data.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::json;

use super::{compile_project, Settings};
use crate::cli::QueryFormat;
use crate::compile::Compiled;
use crate::error::Error;
use crate::project::{CompatKind, CompatNote};

/// Prints the report; exit code 1 if a model cannot be planned.
pub async fn compat(settings: &Settings, format: QueryFormat) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let lineage = super::context::Context::open(settings, &compiled)?.lineage(&compiled, &graph).await;
    let counts = counts(&compiled);
    let project = &settings.project;
    if format == QueryFormat::Json {
        let out = json!({
            "project": project.name,
            "project_file": project.file_name,
            "target": project.target.name,
            "warehouse": project.target.warehouse,
            "threads": project.target.threads,
            "sql_dialect": if settings.dialect() == crate::exec::duckdb::SqlDialect::DuckDb { "duckdb" } else { "datafusion" },
            "will_run": counts,
            "notes": compiled.compat,
            "cannot_plan": lineage.unresolved,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print!("{}", text_report(settings, &compiled, &counts, &lineage.unresolved));
    }
    Ok(if lineage.unresolved.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// How many nodes of each kind will run.
fn counts(compiled: &Compiled) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in compiled.models.values() {
        *out.entry(m.config.materialized.as_str().to_string()).or_insert(0) += 1;
    }
    out.insert("tests".into(), compiled.assertions.len());
    out.insert("sources".into(), compiled.sources.keys().filter(|k| !k.starts_with("wh_seeds.")).count());
    out.insert("analyses".into(), compiled.analyses.len());
    out
}

fn text_report(
    settings: &Settings,
    compiled: &Compiled,
    counts: &BTreeMap<String, usize>,
    unresolved: &BTreeMap<String, String>,
) -> String {
    let project = &settings.project;
    let target = &project.target;
    let mut out = format!("Project `{}` ({})\n", project.name, project.file_name);
    out.push_str(&format!(
        "Target `{}`: warehouse `{}`, {} thread(s), SQL read as {}\n\nWill run:\n",
        target.name,
        target.warehouse,
        target.threads,
        if settings.dialect() == crate::exec::duckdb::SqlDialect::DuckDb { "DuckDB's" } else { "DataFusion's" }
    ));
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let models = compiled.models.values().filter(|m| !matches!(m.config.materialized.as_str(), "seed" | "snapshot"));
    let models = models.count();
    out.push_str(&format!(
        "  {} models ({} tables, {} views, {} incremental, {} ephemeral), {} seeds, {} snapshots\n",
        models,
        get("table"),
        get("view"),
        get("incremental"),
        get("ephemeral"),
        get("seed"),
        get("snapshot")
    ));
    out.push_str(&format!("  {} tests, {} sources\n", get("tests"), get("sources")));
    if !compiled.analyses.is_empty() {
        out.push_str(&format!("  {} analyses, compiled to target/compiled/ and not run\n", compiled.analyses.len()));
    }
    let sections = [
        (CompatKind::Mapped, "Mapped (read and given a wh meaning)"),
        (CompatKind::Ignored, "Ignored (accepted, no effect on what is built)"),
        (CompatKind::Unsupported, "Unsupported (not run; the build goes on without it)"),
    ];
    for (kind, title) in sections {
        let notes: Vec<&CompatNote> = compiled.compat.iter().filter(|n| n.kind == kind).collect();
        out.push_str(&format!("\n{title}:\n"));
        if notes.is_empty() {
            out.push_str("  nothing\n");
        }
        for n in notes {
            let at = n.location.as_ref().map(|l| format!("  ({l})")).unwrap_or_default();
            out.push_str(&format!("  {}: {}{at}\n", n.what, n.detail));
        }
    }
    out.push_str("\nCannot be planned (these would fail when run):\n");
    if unresolved.is_empty() {
        out.push_str("  nothing: every model plans on DataFusion\n");
    }
    for (name, reason) in unresolved {
        out.push_str(&format!("  {name}: {reason}\n"));
    }
    if !unresolved.is_empty() && compiled.has_hooks() {
        out.push_str(&format!("  (this project has hooks: {})\n", crate::compile::HOOKS_PLANNING_NOTE));
    }
    out
}
