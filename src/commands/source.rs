//! `wh source freshness`: how old each source's newest row is.

use std::process::ExitCode;

use super::{compile_project, Settings};
use crate::artifacts::{self, Invocation};
use crate::compile::Compiled;
use crate::error::Error;
use crate::exec::Engine;
use crate::freshness::{self, FreshStatus, Freshness};

/// Checks every source that declares `freshness`; exit 1 if one is past
/// its `error_after` or cannot be checked.
pub async fn freshness(settings: &Settings) -> Result<ExitCode, Error> {
    let clock = std::time::Instant::now();
    let (compiled, _) = compile_project(settings)?;
    let inv = Invocation::new("source freshness", &settings.project);
    let engine = super::context::Context::open(settings, &compiled)?.engine(None).await?;
    let results = check(settings, &compiled, engine, &inv.id, clock).await?;
    if results.is_empty() {
        settings.log("No source declares `freshness` with a `loaded_at_field`");
    }
    for f in &results {
        settings.log(format!("  {:<13} {:<32} {}", f.status.as_str().to_uppercase(), f.source, f.message));
    }
    let failed = results.iter().any(|f| matches!(f.status, FreshStatus::Error | FreshStatus::RuntimeError));
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Registers the sources that declare freshness on `engine`, checks them,
/// and writes `target/sources.json` (for `wh source freshness` and the
/// check at the start of a build).
pub async fn check(
    settings: &Settings,
    compiled: &Compiled,
    engine: Engine,
    invocation_id: &str,
    clock: std::time::Instant,
) -> Result<Vec<Freshness>, Error> {
    for s in compiled.sources.values().filter(|s| s.table.freshness.is_some()) {
        if let Err(e) = engine.register_source(s).await {
            settings.log(format!("warning: {e}"));
        }
    }
    let results = freshness::check(&engine, compiled).await;
    let path = settings.target_dir().join("sources.json");
    let artifact = freshness::artifact(&results, invocation_id, clock.elapsed().as_secs_f64());
    artifacts::write_json(&path, &artifact).map_err(|source| Error::Io { path: path.clone(), source })?;
    Ok(results)
}
