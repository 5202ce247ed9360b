//! Partitioned Parquet tables (`partition_by: [column, ...]` without
//! `format: delta`): Hive-style folders, replaced as a whole.
//!
//! Layout of a model `star/orders_by_month` partitioned by `order_month`:
//!
//! ```text
//! star/orders_by_month/_current.json        the pointer: the current version
//! star/orders_by_month/version-<run id>/order_month=2024-01/part-00000.parquet
//! star/orders_by_month/version-<run id>/order_month=2024-02/part-00000.parquet
//! ```
//!
//! A build writes a new version folder beside the current one (each file
//! published whole, as any table), then stages the new pointer, which the
//! build's publishing step puts in place with its other tables (one atomic
//! rename or object copy). A reader that follows the pointer sees
//! the previous set of files or the new one, never a mix. The previous
//! version stays until the next build, so a reader that read the pointer
//! just before the switch can finish; older versions are removed. The
//! partition columns stay inside the files, which BI tools need.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Value as Json};

use crate::storage::publish;
use crate::storage::Warehouse;

/// The pointer file inside the table's folder.
pub const POINTER: &str = "_current.json";
/// Prefix of version folders.
const VERSION: &str = "version-";
/// Hive's name for a NULL partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a partition value for a path segment, as Hive does.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\{}[]^".contains(c) {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a partitioned table was not published.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// A `partition_by` column the model does not return.
    #[error("partition column `{column}` is not a column of the model ({})", columns.join(", "))]
    UnknownColumn { column: String, columns: Vec<String> },
    /// Writing, checking or publishing a file or the pointer failed.
    #[error("{0}")]
    Write(String),
}

impl From<String> for PartitionError {
    fn from(message: String) -> Self {
        PartitionError::Write(message)
    }
}

/// Splits `batches` by the values of `columns`: the Hive path of each
/// partition (`a=1/b=x`) with its rows, in path order.
pub fn split(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<Vec<(String, RecordBatch)>, PartitionError> {
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| PartitionError::UnknownColumn {
                column: c.clone(),
                columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            })
        })
        .collect::<Result<_, _>>()?;
    let options = FormatOptions::default();
    let mut rows: BTreeMap<String, Vec<(usize, u32)>> = BTreeMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let formatters: Vec<ArrayFormatter> = indices
            .iter()
            .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let path: Vec<String> = columns
                .iter()
                .zip(&formatters)
                .zip(&indices)
                .map(|((c, f), &i)| {
                    let v = f.value(row).to_string();
                    let v =
                        if batch.column(i).is_null(row) || v.is_empty() { NULL_PARTITION.into() } else { escape(&v) };
                    format!("{}={v}", escape(c))
                })
                .collect();
            rows.entry(path.join("/")).or_default().push((b, row as u32));
        }
    }
    rows.into_iter()
        .map(|(path, at)| {
            let mut parts = Vec::new();
            for (b, batch) in batches.iter().enumerate() {
                let idx: UInt32Array = at.iter().filter(|(x, _)| *x == b).map(|(_, r)| *r).collect();
                if !idx.is_empty() {
                    parts.push(take_record_batch(batch, &idx).map_err(|e| e.to_string())?);
                }
            }
            Ok((path, concat_batches(schema, &parts).map_err(|e| e.to_string())?))
        })
        .collect()
}

/// What a written version holds, and the pointer that publishes it.
pub struct Published {
    pub rows: usize,
    pub bytes: u64,
    /// The version folder, relative to the warehouse.
    pub folder: String,
    /// The pointer's new text, for `<rel>/_current.json`.
    pub pointer: Vec<u8>,
}

/// Writes a new version of the table at `rel` (not yet pointed at).
pub async fn publish(
    warehouse: &Warehouse,
    rel: &str,
    run_id: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<Published, PartitionError> {
    let version = format!("{VERSION}{run_id}");
    let parts = split(schema, batches, columns)?;
    let (mut rows, mut bytes, mut files) = (0, 0, Vec::new());
    for (path, batch) in &parts {
        let file = format!("{version}/{path}/part-00000.parquet");
        let file_rel = format!("{rel}/{file}");
        let staged = publish::stage(std::slice::from_ref(batch), schema, &warehouse.staging_path(&file_rel))
            .map_err(|e| format!("cannot write `{file}`: {e}"))?;
        let problems = publish::compatibility_problems(&staged.temp).map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            publish::discard(&staged);
            return Err(format!("the written file would not open in every BI tool: {}", problems.join("; ")).into());
        }
        rows += staged.rows;
        bytes += staged.bytes;
        warehouse.publish(&staged, &file_rel).await.map_err(|e| e.to_string())?;
        files.push(file);
    }
    let previous = current_version(warehouse, rel).await;
    let pointer = json!({
        "version": version,
        "partition_by": columns,
        "files": files,
        "rows": rows,
    });
    let text = serde_json::to_vec_pretty(&pointer).map_err(|e| e.to_string())?;
    // Keep the current version for readers that are still on it (a version
    // an interrupted build wrote and never pointed at goes).
    let keep = [Some(version.clone()), previous];
    for old in warehouse.list_folders(rel).await.unwrap_or_default() {
        if old.starts_with(VERSION) && !keep.iter().flatten().any(|k| k == &old) {
            let _ = warehouse.remove_folder(&format!("{rel}/{old}")).await;
        }
    }
    Ok(Published { rows, bytes, folder: format!("{rel}/{version}"), pointer: text })
}

/// Returns the current version folder's name, if the table was published.
pub async fn current_version(warehouse: &Warehouse, rel: &str) -> Option<String> {
    let bytes = warehouse.get(&format!("{rel}/{POINTER}")).await.ok()??;
    let pointer: Json = serde_json::from_slice(&bytes).ok()?;
    pointer["version"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn splits_by_hive_paths_in_order() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("month", Arc::new(StringArray::from(vec![Some("2024-02"), Some("2024-01"), None, Some("2024-02")]))),
            ("n", Arc::new(Int64Array::from(vec![1, 2, 3, 4]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let parts = split(&batch.schema(), &[batch], &["month".into()]).unwrap();
        let paths: Vec<&str> = parts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["month=2024-01", "month=2024-02", "month=__HIVE_DEFAULT_PARTITION__"]);
        assert_eq!(parts[1].1.num_rows(), 2);
        assert_eq!(escape("a/b=c"), "a%2Fb%3Dc");
        assert!(split(&parts[0].1.schema(), &[], &["nope".into()]).unwrap_err().to_string().contains("`nope`"));
    }
}
