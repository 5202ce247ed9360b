//! `target/catalog.json`: for every built relation, its columns and Arrow
//! types, row count and file size, read from Parquet footers only (no data
//! is scanned).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::file::metadata::ParquetMetaDataReader;
use serde_json::{json, Map, Value as Json};

use crate::compile::Compiled;
use crate::storage::Warehouse;

/// What a Parquet footer tells about a file.
pub struct Footer {
    /// Column names with their Arrow types.
    pub columns: Vec<(String, String)>,
    pub rows: i64,
    pub bytes: u64,
}

/// Reads the footer of a Parquet file.
pub fn footer(path: &Path) -> Option<Footer> {
    let file = File::open(path).ok()?;
    let bytes = file.metadata().ok()?.len();
    let meta = ArrowReaderMetadata::load(&file, Default::default()).ok()?;
    let columns = meta.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
    Some(Footer { columns, rows: meta.metadata().file_metadata().num_rows(), bytes })
}

/// Reads the footer of the warehouse file `rel` from its last bytes: the
/// 8-byte trailer, then the metadata it points at. Two ranged reads,
/// whatever the file's size, on disk or S3.
pub async fn table_footer(warehouse: &Warehouse, rel: &str) -> Option<Footer> {
    let bytes = warehouse.size(rel).await.ok()?;
    let tail = warehouse.read_range(rel, bytes.checked_sub(8)?..bytes).await.ok()?;
    if &tail[4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(tail[..4].try_into().ok()?) as u64;
    let start = bytes.checked_sub(8 + len)?;
    let meta = warehouse.read_range(rel, start..bytes - 8).await.ok()?;
    let meta = ParquetMetaDataReader::decode_metadata(&meta).ok()?;
    let meta = ArrowReaderMetadata::try_new(Arc::new(meta), Default::default()).ok()?;
    let columns = meta.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
    Some(Footer { columns, rows: meta.metadata().file_metadata().num_rows(), bytes })
}

/// Reads the footer of every built table model, by model name.
pub async fn footers(compiled: &Compiled, warehouse: &Warehouse) -> BTreeMap<String, Footer> {
    let mut out = BTreeMap::new();
    for m in compiled.models.values() {
        let Some(rel) = m.output_path() else { continue };
        if let Some(f) = table_footer(warehouse, &rel).await {
            out.insert(m.name.clone(), f);
        }
    }
    out
}

/// Builds the catalog from the models' footers and the local Parquet
/// sources.
pub fn catalog(
    compiled: &Compiled,
    footers: &BTreeMap<String, Footer>,
    generated_at: &str,
    invocation_id: &str,
) -> Json {
    let schema = compiled.schema.as_str();
    let mut nodes = Map::new();
    for m in compiled.models.values() {
        let Some(rel) = m.output_path() else { continue };
        let Some(f) = footers.get(&m.name) else { continue };
        nodes.insert(m.unique_id.clone(), entry(&m.unique_id, (schema, &m.name), &rel, f, &m.description));
    }
    let mut sources = Map::new();
    for s in compiled.sources.values() {
        let path = Path::new(&s.location);
        if !path.is_file() || path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let Some(f) = footer(path) else { continue };
        let at = (s.table.source.as_str(), s.table.name.as_str());
        sources.insert(s.unique_id.clone(), entry(&s.unique_id, at, &s.location, &f, &s.table.description));
    }
    json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
            "generated_at": generated_at,
            "invocation_id": invocation_id,
            "env": { "WH_VERSION": env!("CARGO_PKG_VERSION") },
        },
        "nodes": nodes,
        "sources": sources,
        "errors": Json::Null,
    })
}

/// One relation of dbt's `catalog/v1`: `(schema, name)` as the manifest
/// names it; its file is a stat (the schema allows no other metadata).
fn entry(unique_id: &str, (schema, name): (&str, &str), path: &str, f: &Footer, comment: &str) -> Json {
    let cols: Map<String, Json> = f
        .columns
        .iter()
        .enumerate()
        .map(|(i, (n, t))| (n.clone(), json!({"name": n, "type": t, "index": i + 1, "comment": Json::Null})))
        .collect();
    json!({
        "unique_id": unique_id,
        "metadata": {"type": "parquet", "schema": schema, "name": name, "database": Json::Null, "comment": comment},
        "columns": cols,
        "stats": {
            "row_count": {"id": "row_count", "label": "Row count", "value": f.rows, "include": true},
            "bytes": {"id": "bytes", "label": "File size (bytes)", "value": f.bytes, "include": true},
            "path": {"id": "path", "label": "File", "value": path, "include": true},
        },
    })
}
