//! `wh build`: run the selected models in DAG order; each table is staged,
//! audited by its assertions, and published only if none fails
//! (write-audit-publish).

use std::path::Path;
use std::process::ExitCode;

use super::{run, Settings};
use crate::error::Error;

/// Builds the selected models.
pub async fn execute(settings: &Settings, junit: Option<&Path>, full_refresh: bool) -> Result<ExitCode, Error> {
    run::execute(settings, "build", true, junit, full_refresh).await
}
