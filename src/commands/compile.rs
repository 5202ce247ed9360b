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
    let (compiled, _graph) = compile_project(settings)?;
    let inv = Invocation::new("compile", &settings.project);
    write_compiled(settings, &inv, &compiled, None)?;
    settings.log(format!(
        "Compiled {} models and {} sources to {}",
        compiled.models.len(),
        compiled.sources.len(),
        settings.project.target_path.join("compiled").display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Writes each model's SQL under `target/compiled/` and `target/manifest.json`.
pub fn write_compiled(
    settings: &Settings,
    inv: &Invocation,
    compiled: &Compiled,
    lineage: Option<&crate::lineage::ProjectLineage>,
) -> Result<(), Error> {
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
    let manifest = artifacts::manifest(inv, compiled, &settings.project.exposures, lineage);
    let path = settings.target_dir().join("manifest.json");
    crate::failpoint::hit("manifest.write")
        .and_then(|()| artifacts::write_json(&path, &manifest))
        .map_err(|source| Error::Io { path, source })
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
