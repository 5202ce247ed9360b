//! `target/catalog.json`: for every built relation, its columns and Arrow
//! types, row count and file size, read from Parquet footers only (no data
//! is scanned).

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use serde_json::{json, Map, Value as Json};

use crate::compile::Compiled;

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

/// Builds the catalog of the warehouse at `warehouse`.
pub fn catalog(compiled: &Compiled, warehouse: &Path, generated_at: &str, invocation_id: &str) -> Json {
    let mut nodes = Map::new();
    for m in compiled.models.values() {
        let Some(rel) = m.output_path() else { continue };
        let Some(f) = footer(&warehouse.join(&rel)) else { continue };
        nodes.insert(m.unique_id.clone(), entry(&m.name, &rel, &f, &m.description));
    }
    let mut sources = Map::new();
    for s in compiled.sources.values() {
        let path = Path::new(&s.location);
        if !path.is_file() || path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let Some(f) = footer(path) else { continue };
        sources.insert(s.unique_id.clone(), entry(&s.table.name, &s.location, &f, &s.table.description));
    }
    json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
            "wh_version": env!("CARGO_PKG_VERSION"),
            "generated_at": generated_at,
            "invocation_id": invocation_id,
        },
        "nodes": nodes,
        "sources": sources,
        "errors": Json::Null,
    })
}

fn entry(name: &str, path: &str, f: &Footer, comment: &str) -> Json {
    let cols: Map<String, Json> = f
        .columns
        .iter()
        .enumerate()
        .map(|(i, (n, t))| (n.clone(), json!({"name": n, "type": t, "index": i + 1, "comment": Json::Null})))
        .collect();
    json!({
        "metadata": {"type": "parquet", "name": name, "path": path, "comment": comment},
        "columns": cols,
        "stats": {
            "row_count": {"id": "row_count", "label": "Row count", "value": f.rows, "include": true},
            "bytes": {"id": "bytes", "label": "File size (bytes)", "value": f.bytes, "include": true},
        },
    })
}
