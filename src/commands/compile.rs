//! `wh compile`: render every model to `target/compiled/` and write the
//! manifest, without reading any data.

use std::path::Path;
use std::process::ExitCode;

use super::{compile_project, Settings};
use crate::artifacts::{self, Invocation};
use crate::compile::Compiled;
use crate::error::Error;

/// Compiles the project.
pub fn execute(settings: &Settings) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let inv = Invocation::new("compile", &settings.project);
    write_compiled(settings, &inv, &compiled, None)?;
    settings.log(format!(
        "Compiled {} models and {} sources to {}",
        compiled.models.len(),
        compiled.sources.len(),
        settings.project.target_path.join("compiled").display()
    ));
    // The process ends next: its memory goes back whole (see short_lived).
    std::mem::forget((compiled, graph));
    Ok(ExitCode::SUCCESS)
}

/// Writes each model's SQL under `target/compiled/` and `target/manifest.json`,
/// the manifest on a thread of its own beside the SQL files.
pub fn write_compiled(
    settings: &Settings,
    inv: &Invocation,
    compiled: &Compiled,
    lineage: Option<&crate::lineage::ProjectLineage>,
) -> Result<(), Error> {
    let path = settings.target_dir().join("manifest.json");
    let manifest = || {
        crate::failpoint::hit("manifest.write")
            .and_then(|()| artifacts::write_manifest(&path, inv, compiled, &settings.project.exposures, lineage))
            .map_err(|source| Error::Io { path: path.clone(), source })
    };
    std::thread::scope(|scope| {
        let manifest = scope.spawn(manifest);
        let files = write_sql_files(settings, compiled);
        let manifest = manifest.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        files.and(manifest)
    })
}

/// Writes each model's (and analysis') SQL under `target/compiled/`.
fn write_sql_files(settings: &Settings, compiled: &Compiled) -> Result<(), Error> {
    let dir = settings.target_dir().join("compiled");
    for model in compiled.models.values() {
        let (full, incremental) = model.compiled_paths();
        write(&dir.join(full), format!("{}\n", model.sql).as_bytes())?;
        if let (Some(path), Some(sql)) = (incremental, &model.incremental_sql) {
            write(&dir.join(path), format!("{sql}\n").as_bytes())?;
        }
    }
    for (path, sql) in &compiled.analyses {
        write(&dir.join(path), format!("{sql}\n").as_bytes())?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // Skip unchanged files: a 10,000-model project recompiles in place fast.
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    // Compiled SQL is derived and rewritten by every compile: a plain write,
    // no temporary file or fsync (10,000 fsyncs cost seconds).
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}
