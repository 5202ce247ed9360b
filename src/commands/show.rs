//! `wh show MODEL`: print the first rows of a built model.

use std::process::ExitCode;

use super::{compile_project, open_warehouse, query, Settings};
use crate::cli::QueryFormat;
use crate::diagnostic::did_you_mean;
use crate::error::Error;

/// Prints up to `limit` rows of `model`.
pub async fn execute(settings: &Settings, model: &str, limit: usize) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let Some(m) = compiled.models.get(model) else {
        return Err(Error::Usage {
            message: format!("unknown model `{model}`"),
            hint: did_you_mean(model, compiled.models.keys().map(String::as_str)),
        });
    };
    let ctx = super::context::Context::reachable(settings, &compiled).await?;
    let engine = open_warehouse(settings, &ctx, &compiled, &graph).await?;
    if !engine.has_table(model) {
        return Err(Error::Usage {
            message: format!("model `{model}` has not been built ({} has no output yet)", m.path.display()),
            hint: Some(format!("run `wh build --select +{model}` first")),
        });
    }
    let sql = format!("SELECT * FROM {} LIMIT {limit}", crate::compile::relation(model));
    query::print(&engine, &sql, None, QueryFormat::Table).await
}
