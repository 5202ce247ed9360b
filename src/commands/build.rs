//! `wh build`: run the selected models in DAG order and publish them.

use std::process::ExitCode;

use super::{run, Settings};
use crate::error::Error;

/// Builds the selected models.
pub async fn execute(settings: &Settings) -> Result<ExitCode, Error> {
    run::execute(settings, "build").await
}
