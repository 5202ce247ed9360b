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

    /// Settings for delta-rs: the target's S3 settings; credentials come
    /// from the environment as for every S3 access.
    fn delta_options(&self) -> std::collections::HashMap<String, String> {
        let mut options = std::collections::HashMap::new();
        if let Warehouse::Remote(r) = self {
            DELTA_S3.call_once(|| deltalake::aws::register_handlers(None));
            let s = &r.settings;
            if let Some(v) = &s.region {
                options.insert("AWS_REGION".into(), v.clone());
            }
            if let Some(v) = &s.endpoint {
                options.insert("AWS_ENDPOINT_URL".into(), v.clone());
            }
            if let Some(v) = s.allow_http {
                options.insert("AWS_ALLOW_HTTP".into(), v.to_string());
            }
            if let Some(v) = s.path_style {
                options.insert("AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into(), (!v).to_string());
            }
            // One writer per table at a time (wh builds a table once per
            // run): commits go through copy-if-absent emulation by rename.
            options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "true".into());
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                if let Some(c) = profile_credentials() {
                    options.insert("AWS_ACCESS_KEY_ID".into(), c.key_id);
                    options.insert("AWS_SECRET_ACCESS_KEY".into(), c.secret);
                    if let Some(t) = c.token {
                        options.insert("AWS_SESSION_TOKEN".into(), t);
                    }
                }
            }
        }
        options
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
        let url = self.delta_url(rel)?;
        if let Warehouse::Local(root) = self {
            std::fs::create_dir_all(root.join(rel)).map_err(|e| e.to_string())?;
        }
        let table = deltalake::DeltaTable::try_from_url_with_storage_options(url, self.delta_options())
            .await
            .map_err(|e| e.to_string())?;
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
        let url = self.delta_url(rel)?;
        let table =
            deltalake::open_table_with_storage_options(url, self.delta_options()).await.map_err(|e| e.to_string())?;
        Ok(table.table_provider().await.map_err(|e| e.to_string())?)
    }
}

#[cfg(feature = "delta")]
static DELTA_S3: std::sync::Once = std::sync::Once::new();
