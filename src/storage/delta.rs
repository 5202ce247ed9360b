//! Delta Lake tables (feature `delta`, delta-rs): committing a model's
//! batches as a new table version, and reading the current one.

use super::*;

/// What a build without Delta Lake says when a model needs it.
pub const NO_DELTA: &str = "this wh was built without the `delta` feature (Delta Lake tables)";

/// How to get a wh with every feature.
pub const ALL_FEATURES_HINT: &str =
    "build wh with every feature: cargo build --release --all-features (see `wh --help`)";

#[cfg(not(feature = "delta"))]
impl Warehouse {
    /// Delta tables need the `delta` feature.
    pub async fn write_delta(
        &self,
        _rel: &str,
        _schema: datafusion::arrow::datatypes::SchemaRef,
        _batches: Vec<datafusion::arrow::array::RecordBatch>,
        _partition_by: &[String],
    ) -> Result<i64, StorageError> {
        Err(format!("{NO_DELTA}; {ALL_FEATURES_HINT}").into())
    }

    /// Delta tables need the `delta` feature.
    pub async fn delta_provider(
        &self,
        _rel: &str,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>, StorageError> {
        Err(format!("{NO_DELTA}; {ALL_FEATURES_HINT}").into())
    }
}

#[cfg(feature = "delta")]
impl Warehouse {
    /// Returns the URL of the Delta table at `rel`.
    fn delta_url(&self, rel: &str) -> Result<Url, String> {
        let text = match self {
            Warehouse::Local(root) => {
                let dir = root.join(rel);
                return Url::from_directory_path(&dir).map_err(|()| format!("not an absolute path: {}", dir.display()));
            }
            Warehouse::Remote(_) => format!("{}/", self.location(rel)),
        };
        Url::parse(&text).map_err(|e| e.to_string())
    }

    /// A delta-rs table builder for `rel`. On S3 it goes through the
    /// warehouse's own object_store client (its settings and credentials),
    /// with delta-rs's default log store: a commit is a conditional PUT
    /// (`If-None-Match`), so two writers of one version cannot both win.
    fn delta_builder(&self, rel: &str) -> Result<deltalake::DeltaTableBuilder, String> {
        let url = self.delta_url(rel)?;
        let builder = deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(|e| e.to_string())?;
        Ok(match self {
            Warehouse::Local(_) => builder,
            Warehouse::Remote(r) => {
                DELTA_S3.call_once(register_s3_log_store);
                builder.with_storage_backend(r.store.clone(), url)
            }
        })
    }

    /// Commits `batches` as the new version of the Delta table at `rel`
    /// (created on first write): one Delta commit that replaces the table's
    /// rows, old versions kept for time travel. Returns the new version.
    pub async fn write_delta(
        &self,
        rel: &str,
        schema: datafusion::arrow::datatypes::SchemaRef,
        batches: Vec<datafusion::arrow::array::RecordBatch>,
        partition_by: &[String],
    ) -> Result<i64, StorageError> {
        if let Warehouse::Local(root) = self {
            std::fs::create_dir_all(root.join(rel)).map_err(|e| e.to_string())?;
        }
        let mut table = self.delta_builder(rel)?.build().map_err(|e| e.to_string())?;
        // The first write creates the table.
        match table.load().await {
            Ok(()) | Err(deltalake::DeltaTableError::NotATable(_)) => {}
            Err(e) => return Err(e.to_string().into()),
        }
        // An empty result still commits, with the model's schema.
        let batches =
            if batches.is_empty() { vec![datafusion::arrow::array::RecordBatch::new_empty(schema)] } else { batches };
        let mut write = table
            .write(batches)
            .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_writer_properties(publish::writer_properties());
        if !partition_by.is_empty() {
            write = write.with_partition_columns(partition_by.to_vec());
        }
        let table = write.await.map_err(|e| e.to_string())?;
        Ok(table.version().map(|v| v as i64).unwrap_or(0))
    }

    /// Opens the Delta table at `rel` for reading, at its latest version.
    pub async fn delta_provider(&self, rel: &str) -> Result<Arc<dyn datafusion::catalog::TableProvider>, StorageError> {
        let table = self.delta_builder(rel)?.load().await.map_err(|e| e.to_string())?;
        Ok(table.table_provider().await.map_err(|e| e.to_string())?)
    }
}

#[cfg(feature = "delta")]
static DELTA_S3: std::sync::Once = std::sync::Once::new();

/// delta-rs's default log store for `s3://` tables, over the store wh
/// passes in (delta-rs's own S3 support, with the AWS SDK, is not built).
#[cfg(feature = "delta")]
struct S3LogStores;

#[cfg(feature = "delta")]
impl deltalake::logstore::LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(prefixed_store, root_store, location, options))
    }
}

#[cfg(feature = "delta")]
fn register_s3_log_store() {
    let scheme = Url::parse("s3://").expect("a valid URL");
    deltalake::logstore::logstore_factories().insert(scheme, Arc::new(S3LogStores));
}
