//! `wh query "SQL"`: ad-hoc SQL over the warehouse, where every built model
//! is a table by its name and every source is `source.table`.

use std::process::ExitCode;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::{compile_project, open_warehouse, Settings};
use crate::cli::QueryFormat;
use crate::error::Error;
use crate::exec::Engine;

/// Runs `sql` and prints the result to stdout.
pub async fn execute(
    settings: &Settings,
    sql: &str,
    limit: Option<usize>,
    format: QueryFormat,
) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let ctx = super::context::Context::reachable(settings, &compiled).await?;
    let engine = open_warehouse(settings, &ctx, &compiled, &graph).await?;
    print(&engine, sql, limit, format).await
}

/// Runs `sql` on `engine` and prints at most `limit` rows in `format`.
pub async fn print(engine: &Engine, sql: &str, limit: Option<usize>, format: QueryFormat) -> Result<ExitCode, Error> {
    let (schema, batches) = engine.query(sql).await?;
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut left = limit.unwrap_or(usize::MAX);
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        left -= take;
        kept.push(b.slice(0, take));
    }
    let text = match format {
        QueryFormat::Table => {
            if kept.is_empty() {
                kept.push(RecordBatch::new_empty(schema));
            }
            let mut t = pretty_format_batches(&kept).map_err(|e| Error::Internal(e.to_string()))?.to_string();
            t.push('\n');
            t
        }
        QueryFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for b in &kept {
                    w.write(b).map_err(|e| Error::Internal(e.to_string()))?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        QueryFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in &kept {
                    w.write(b).map_err(|e| Error::Internal(e.to_string()))?;
                }
                w.finish().map_err(|e| Error::Internal(e.to_string()))?;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
