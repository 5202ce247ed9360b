//! `wh ls`: list the selected models.

use std::process::ExitCode;

use super::{compile_project, Settings};
use crate::cli::LsOutput;
use crate::error::Error;

/// Prints the selected models, one per line, sorted by name.
pub fn execute(settings: &Settings, output: LsOutput) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let selected = settings.selected(&compiled, &graph)?;
    let mut out = String::new();
    for name in &selected {
        let m = &compiled.models[name];
        let line = match output {
            LsOutput::Name => name.clone(),
            LsOutput::Path => m.path.to_string_lossy().replace('\\', "/"),
            LsOutput::Json => serde_json::json!({
                "name": m.name,
                "unique_id": m.unique_id,
                "original_file_path": m.path.to_string_lossy().replace('\\', "/"),
                "materialized": m.config.materialized.as_str(),
                "tags": m.config.tags,
                "depends_on": m.refs.iter().chain(m.sources.iter()).collect::<Vec<_>>(),
                "output_path": m.output_path(),
            })
            .to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    print!("{out}");
    // The process ends next: its memory goes back whole (see short_lived).
    std::mem::forget((compiled, graph));
    Ok(ExitCode::SUCCESS)
}
