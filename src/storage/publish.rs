//! Writing Parquet for BI readers and publishing it atomically: a model is
//! written to a hidden temporary file beside its final path, synced, and
//! renamed into place, so a reader sees the old file or the new one, never
//! half of either.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{WriterProperties, WriterVersion};

/// Marker in the names of temporary files, for clean-up after a crash.
pub const TMP_MARKER: &str = ".wh-tmp-";

/// Returns the type a BI reader handles best for `dt`: plain strings,
/// signed integers, microsecond timestamps, decimals of precision <= 18
/// (wider ones become DOUBLE).
pub fn bi_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) if *p > 18 => DataType::Float64,
        DataType::Decimal256(p, s) => DataType::Decimal128(*p, *s),
        DataType::Dictionary(_, value) => bi_type(value),
        other => other.clone(),
    }
}

/// Returns `schema` with every field converted by [`bi_type`].
pub fn bi_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| Field::new(f.name(), bi_type(f.data_type()), f.is_nullable())).collect();
    Arc::new(Schema::new(fields))
}

/// Casts `batch` to `schema` (from [`bi_schema`]).
pub fn to_bi(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(
            |(col, field)| {
                if col.data_type() == field.data_type() {
                    Ok(col.clone())
                } else {
                    cast(col, field.data_type())
                }
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writer settings for BI readers: Parquet 1.0 pages, Snappy, a fixed
/// `created_by` so the same data gives the same bytes.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("wh version {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A table written to its temporary file, not yet visible.
#[derive(Debug)]
pub struct Staged {
    pub temp: PathBuf,
    pub dest: PathBuf,
    pub rows: usize,
    pub bytes: u64,
}

/// Writes `batches` to a temporary file beside `dest`, synced to disk.
pub fn stage(batches: &[RecordBatch], schema: &SchemaRef, dest: &Path) -> std::io::Result<Staged> {
    let temp = temp_path(dest, "table.parquet")?;
    let result = write_file(batches, schema, &temp);
    match result {
        Ok(rows) => {
            let bytes = std::fs::metadata(&temp)?.len();
            Ok(Staged { temp, dest: dest.to_path_buf(), rows, bytes })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

fn write_file(batches: &[RecordBatch], schema: &SchemaRef, path: &Path) -> std::io::Result<usize> {
    write_batches(File::create(path)?, schema, batches.iter().cloned())
}

/// Writes `batches` to `file` as Parquet for BI readers, synced to disk;
/// returns the rows written.
fn write_batches(file: File, schema: &SchemaRef, batches: impl Iterator<Item = RecordBatch>) -> std::io::Result<usize> {
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), Some(writer_properties())).map_err(std::io::Error::other)?;
    let mut rows = 0;
    for batch in batches {
        rows += batch.num_rows();
        writer.write(&batch).map_err(std::io::Error::other)?;
    }
    let file = writer.into_inner().map_err(std::io::Error::other)?;
    file.sync_all()?;
    Ok(rows)
}

/// A table being written to its temporary file as its batches arrive, by
/// an encoder thread of its own while the query goes on (row groups of
/// 1 Mi rows: 128 Ki cost 8% more CPU).
pub struct ParquetSink {
    tx: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    encoder: Option<std::thread::JoinHandle<std::io::Result<usize>>>,
    temp: PathBuf,
    dest: PathBuf,
}

impl ParquetSink {
    /// Starts writing a temporary file beside `dest`.
    pub fn create(schema: &SchemaRef, dest: &Path) -> std::io::Result<ParquetSink> {
        let temp = temp_path(dest, "table.parquet")?;
        let file = File::create(&temp)?;
        // A few batches in flight: the query waits when encoding lags.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let schema = schema.clone();
        let encoder = std::thread::Builder::new()
            .name("wh-parquet".into())
            .spawn(move || encode(file, &schema, rx))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&temp);
            })?;
        Ok(ParquetSink { tx: Some(tx), encoder: Some(encoder), temp, dest: dest.to_path_buf() })
    }

    /// Queues a batch (of the schema given to [`ParquetSink::create`]).
    pub async fn write(&mut self, batch: RecordBatch) -> std::io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The encoder stopped: its error says why.
            Err(self.join().await.err().unwrap_or_else(|| std::io::Error::other("the Parquet encoder stopped")))
        }
    }

    /// Completes the file, synced to disk.
    pub async fn finish(mut self) -> std::io::Result<Staged> {
        let rows = self.join().await?;
        let bytes = std::fs::metadata(&self.temp)?.len();
        Ok(Staged { temp: std::mem::take(&mut self.temp), dest: std::mem::take(&mut self.dest), rows, bytes })
    }

    async fn join(&mut self) -> std::io::Result<usize> {
        self.tx = None;
        let Some(encoder) = self.encoder.take() else {
            return Err(std::io::Error::other("the Parquet encoder stopped"));
        };
        let result = tokio::task::spawn_blocking(move || encoder.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the Parquet encoder panicked"))?;
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result
    }
}

impl Drop for ParquetSink {
    /// An unfinished file is removed (the query failed or was cancelled).
    fn drop(&mut self) {
        if self.encoder.is_some() {
            self.tx = None;
            if let Some(encoder) = self.encoder.take() {
                let _ = encoder.join();
            }
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// The encoder thread of a [`ParquetSink`]: returns the rows written.
/// (Encoding the columns of a row group on parallel threads cost 12% more
/// CPU and gained no wall time on 2 cores, where other models run at once.)
fn encode(file: File, schema: &SchemaRef, mut rx: tokio::sync::mpsc::Receiver<RecordBatch>) -> std::io::Result<usize> {
    write_batches(file, schema, std::iter::from_fn(|| rx.blocking_recv()))
}

/// Returns a new temporary path beside `dest` (creating its folder).
fn temp_path(dest: &Path, default_name: &str) -> std::io::Result<PathBuf> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or(default_name);
    Ok(dir.join(format!(".{file_name}{TMP_MARKER}{}", std::process::id())))
}

/// Writes `batches` as CSV (a header row, RFC 3339 timestamps) to a
/// temporary file beside `dest`, synced to disk.
pub fn stage_csv(batches: &[RecordBatch], dest: &Path) -> std::io::Result<Staged> {
    let temp = temp_path(dest, "table.csv")?;
    let write = || -> std::io::Result<usize> {
        let file = File::create(&temp)?;
        let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(file);
        let mut rows = 0;
        for b in batches {
            rows += b.num_rows();
            writer.write(b).map_err(std::io::Error::other)?;
        }
        writer.into_inner().sync_all()?;
        Ok(rows)
    };
    match write() {
        Ok(rows) => Ok(Staged { bytes: std::fs::metadata(&temp)?.len(), temp, dest: dest.to_path_buf(), rows }),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Writes `bytes` to a temporary file beside `dest`, synced to disk.
pub fn stage_bytes(dest: &Path, bytes: &[u8]) -> std::io::Result<Staged> {
    let temp = temp_path(dest, "file")?;
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    };
    match write() {
        Ok(()) => Ok(Staged { temp, dest: dest.to_path_buf(), rows: 0, bytes: bytes.len() as u64 }),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Whether `e` says the device is full (ENOSPC), also when it was wrapped
/// by the Parquet writer.
pub fn no_space(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.to_string().contains("No space left on device")
}

/// Renames a staged file into place (atomic on one file system).
pub fn publish(staged: &Staged) -> std::io::Result<()> {
    std::fs::rename(&staged.temp, &staged.dest)?;
    if let Some(dir) = staged.dest.parent() {
        // Persist the rename itself; best effort where directories cannot be opened.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Removes a staged file that will not be published.
pub fn discard(staged: &Staged) {
    let _ = std::fs::remove_file(&staged.temp);
}

/// Removes temporary files that an interrupted run left under `root`;
/// returns how many.
pub fn remove_leftovers(root: &Path) -> usize {
    if !root.is_dir() {
        return 0;
    }
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().contains(TMP_MARKER))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes `bytes` to `dest` through a temporary file and a rename.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(dest, |file| std::io::Write::write_all(file, bytes))
}

/// Writes `dest` through a temporary file and a rename, `write` filling
/// the temporary file (a large artifact streamed as it is serialized).
pub fn write_atomic_with(
    dest: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".wh-")
        .suffix(&format!("{TMP_MARKER}{}", std::process::id()))
        .tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    // Readable like any other file of the warehouse (tempfile creates 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Checks a written Parquet file against what every BI reader opens: format
/// version 1.0, no DELTA_* encodings, no nanosecond timestamps, no unsigned
/// integers, no nested columns, decimals of precision <= 18, and plain
/// string types. Reads the footer only. Returns each violation, naming the
/// column.
pub fn compatibility_problems(path: &Path) -> std::io::Result<Vec<String>> {
    use parquet::basic::{Encoding, LogicalType, TimeUnit as PqTimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let reader = SerializedFileReader::new(File::open(path)?).map_err(std::io::Error::other)?;
    let meta = reader.metadata();
    let mut problems = Vec::new();
    if meta.file_metadata().version() != 1 {
        problems.push(format!("Parquet format version {} (readers need 1)", meta.file_metadata().version()));
    }
    let schema = meta.file_metadata().schema_descr();
    for (i, col) in schema.columns().iter().enumerate() {
        let name = col.path().parts().join(".");
        if col.path().parts().len() > 1 || col.max_rep_level() > 0 {
            problems.push(format!("column `{name}` is nested (lists, structs and maps do not open in BI tools)"));
            continue;
        }
        match col.logical_type_ref() {
            Some(LogicalType::Timestamp(t)) if t.unit == PqTimeUnit::NANOS => {
                problems.push(format!("column `{name}` is a nanosecond timestamp (readers need microseconds)"))
            }
            Some(LogicalType::Integer(t)) if !t.is_signed => {
                problems.push(format!("column `{name}` is an unsigned integer"))
            }
            Some(LogicalType::Decimal(d)) if d.precision > 18 => {
                problems.push(format!("column `{name}` is a decimal of precision {} (at most 18)", d.precision))
            }
            _ => {}
        }
        let delta = [Encoding::DELTA_BINARY_PACKED, Encoding::DELTA_LENGTH_BYTE_ARRAY, Encoding::DELTA_BYTE_ARRAY];
        if meta.row_groups().iter().any(|rg| rg.column(i).encodings().any(|e| delta.contains(&e))) {
            problems.push(format!("column `{name}` uses a DELTA_* encoding"));
        }
    }
    // The Arrow schema stored in the footer decides what pyarrow and DuckDB
    // read: strings must be plain Utf8, not large or view strings.
    let arrow = parquet::arrow::parquet_to_arrow_schema(schema, meta.file_metadata().key_value_metadata())
        .map_err(std::io::Error::other)?;
    for f in arrow.fields() {
        if matches!(
            f.data_type(),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::LargeBinary | DataType::BinaryView
        ) {
            problems.push(format!("column `{}` is stored as {} (readers need plain strings)", f.name(), f.data_type()));
        }
    }
    Ok(problems)
}

/// Returns the columns of `schema` that no BI tool opens: nested types.
/// (Other types are made BI-safe by [`bi_schema`].)
pub fn schema_problems(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_nested())
        .map(|f| format!("column `{}` is nested (lists, structs and maps do not open in BI tools)", f.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bi_types() {
        assert_eq!(bi_type(&DataType::Utf8View), DataType::Utf8);
        assert_eq!(bi_type(&DataType::UInt64), DataType::Int64);
        assert_eq!(
            bi_type(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(bi_type(&DataType::Decimal128(38, 2)), DataType::Float64);
        assert_eq!(bi_type(&DataType::Decimal128(10, 2)), DataType::Decimal128(10, 2));
    }

    #[test]
    fn compatibility_check_names_the_column() {
        use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray, UInt32Array};
        let dir = tempfile::tempdir().unwrap();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(vec![1]))),
            ("name", Arc::new(StringArray::from(vec!["a"]))),
            ("at", Arc::new(TimestampNanosecondArray::from(vec![1]))),
            ("n", Arc::new(UInt32Array::from(vec![1]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        // Written for BI readers: no problem.
        let good = dir.path().join("good.parquet");
        let schema = bi_schema(&batch.schema());
        write_file(&[to_bi(&batch, &schema).unwrap()], &schema, &good).unwrap();
        assert_eq!(compatibility_problems(&good).unwrap(), Vec::<String>::new());
        // Written raw, with Parquet 2.0 defaults: every problem, by column.
        let bad = dir.path().join("bad.parquet");
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_column_encoding("id".into(), parquet::basic::Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled("id".into(), false)
            .build();
        let mut w = ArrowWriter::try_new(File::create(&bad).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let problems = compatibility_problems(&bad).unwrap().join("\n");
        assert!(problems.contains("format version 2"), "{problems}");
        assert!(problems.contains("`id` uses a DELTA_* encoding"), "{problems}");
        assert!(problems.contains("`at` is a nanosecond timestamp"), "{problems}");
        assert!(problems.contains("`n` is an unsigned integer"), "{problems}");
    }
}
