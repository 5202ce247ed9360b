//! Registering a project's sources with the engine: CSV and Parquet files,
//! folders and globs, locally or on S3, with declared or inferred schemas.

use super::*;

impl Engine {
    /// Registers a source table as `"source"."table"`.
    pub async fn register_source(&self, src: &CompiledSource) -> Result<(), ExecError> {
        let table = &src.table;
        let reference = TableReference::partial(table.source.as_str(), table.name.as_str());
        self.ensure_schema(&table.source);
        let location = src.location.as_str();
        let is_glob = location.contains(['*', '?', '[']);
        let local = !location.contains("://");
        if local && !is_glob && !Path::new(location).exists() {
            return Err(ExecError::Source {
                message: format!("source `{}`: no file or directory at `{location}`", table.key()),
                location: table.defined_at.clone(),
                hint: Some("check the table's `location` and the vars it uses (e.g. --vars '{raw_root: DIR}')".into()),
            });
        }
        let ext = if local && Path::new(location).is_file() {
            Path::new(location).extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default()
        } else {
            match table.format {
                FileFormat::Parquet => ".parquet".to_string(),
                FileFormat::Csv => ".csv".to_string(),
            }
        };
        if !is_glob && table.format == FileFormat::Parquet {
            let checked = match local {
                true => check_footers(Path::new(location), &ext),
                false => self.check_remote_footers(location, &ext).await,
            };
            checked.map_err(|message| ExecError::Source {
                message: format!("source `{}`: {message}", table.key()),
                location: table.defined_at.clone(),
                hint: Some("the file is truncated or damaged: write it again, or point the source elsewhere".into()),
            })?;
        }
        let parquet = ParquetReadOptions { file_extension: &ext, ..Default::default() };
        let csv =
            CsvReadOptions::new().has_header(table.has_header).delimiter(table.delimiter as u8).file_extension(&ext);
        // Seeds are small: their types are inferred from every row, so that a
        // decimal on row 5,000 does not fail a column inferred as integer.
        let csv = match table.source == crate::project::SEED_SOURCE {
            true => csv.schema_infer_max_records(SEED_INFER_ROWS),
            false => csv,
        };
        // Declared column types (a seed's `column_types`) replace the
        // inferred ones before a value is parsed: "01234" stays a string.
        let declared = match table.format {
            FileFormat::Csv if !table.column_types.is_empty() => {
                Some(self.declared_csv_schema(src, csv.clone()).await?)
            }
            _ => None,
        };
        let csv = match &declared {
            Some(schema) => csv.schema(schema),
            None => csv,
        };
        let result = match (table.format, !local && is_glob) {
            // DataFusion expands globs in local paths only: a glob in a URL is
            // split into its prefix and pattern here.
            (format, true) => {
                let options = match format {
                    FileFormat::Parquet => {
                        parquet.to_listing_options(&self.ctx.copied_config(), self.ctx.copied_table_options())
                    }
                    FileFormat::Csv => {
                        csv.to_listing_options(&self.ctx.copied_config(), self.ctx.copied_table_options())
                    }
                };
                self.register_url_glob(reference, location, options).await
            }
            (FileFormat::Parquet, false) => self.ctx.register_parquet(reference, location, parquet).await,
            (FileFormat::Csv, false) => self.ctx.register_csv(reference, location, csv).await,
        };
        result.map_err(|err| ExecError::Source {
            message: format!("source `{}`: cannot read `{location}`: {}", table.key(), err.strip_backtrace()),
            location: table.defined_at.clone(),
            hint: None,
        })
    }

    /// Infers a CSV source's schema and applies its declared column types.
    pub(super) async fn declared_csv_schema(
        &self,
        src: &CompiledSource,
        csv: CsvReadOptions<'_>,
    ) -> Result<datafusion::arrow::datatypes::Schema, ExecError> {
        use datafusion::arrow::datatypes::{Field, Schema};
        let table = &src.table;
        let fail = |message: String, hint: Option<String>| ExecError::Source {
            message: format!("source `{}`: {message}", table.key()),
            location: table.defined_at.clone(),
            hint,
        };
        let inferred = self
            .ctx
            .read_csv(src.location.as_str(), csv)
            .await
            .map_err(|e| fail(format!("cannot read `{}`: {}", src.location, e.strip_backtrace()), None))?;
        let inferred = inferred.schema().as_arrow().clone();
        for name in table.column_types.keys() {
            if inferred.field_with_name(name).is_err() {
                let names = inferred.fields().iter().map(|f| f.name().as_str());
                return Err(fail(
                    format!("`column_types` names `{name}`, which is not a column of the file"),
                    crate::diagnostic::did_you_mean(name, names),
                ));
            }
        }
        let mut fields = Vec::new();
        for f in inferred.fields() {
            let Some(sql_type) = table.column_types.get(f.name()) else {
                fields.push(f.as_ref().clone());
                continue;
            };
            let sql_type = sql_type.as_str().unwrap_or_default();
            let probe = format!("select cast(null as {sql_type}) as c");
            let data_type = match self.ctx.sql(&probe).await {
                Ok(df) => df.schema().field(0).data_type().clone(),
                Err(e) => {
                    return Err(fail(
                        format!("column `{}`: `{sql_type}` is not a SQL type: {}", f.name(), e.strip_backtrace()),
                        Some(
                            "use a type such as varchar, integer, bigint, double, decimal(10,2), date, timestamp"
                                .into(),
                        ),
                    ))
                }
            };
            fields.push(Field::new(f.name(), data_type, true));
        }
        Ok(Schema::new(fields))
    }

    /// Registers the files under a URL's prefix that match its glob
    /// (`s3://bucket/raw/items-*.parquet`).
    pub(super) async fn register_url_glob(
        &self,
        reference: TableReference,
        location: &str,
        options: datafusion::datasource::listing::ListingOptions,
    ) -> datafusion::error::Result<()> {
        use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
        let glob_at = location.find(['*', '?', '[']).unwrap_or(location.len());
        let split = location[..glob_at].rfind('/').map_or(0, |i| i + 1);
        let base = url::Url::parse(&location[..split]).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let url = ListingTableUrl::try_new(base, None)?.with_glob(&location[split..])?;
        let config = ListingTableConfig::new(url).with_listing_options(options).infer_schema(&self.ctx.state()).await?;
        self.ctx.register_table(reference, Arc::new(ListingTable::try_new(config)?))?;
        Ok(())
    }

    /// [`check_footers`] for the objects at a URL (`s3://bucket/raw/x.parquet`
    /// or a folder of them), through the store the engine reads them with:
    /// two ranged reads per object. A store the engine does not know is
    /// left to the reader, which says so.
    async fn check_remote_footers(&self, location: &str, ext: &str) -> Result<(), String> {
        use datafusion::datasource::listing::ListingTableUrl;
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let Ok(url) = ListingTableUrl::parse(location) else { return Ok(()) };
        let Ok(store) = self.ctx.runtime_env().object_store(url.object_store()) else { return Ok(()) };
        let files = match store.head(url.prefix()).await {
            Ok(meta) => vec![meta],
            Err(_) => {
                let listed: Vec<object_store::ObjectMeta> =
                    store.list(Some(url.prefix())).try_collect().await.map_err(|e| e.to_string())?;
                listed.into_iter().filter(|m| m.location.as_ref().ends_with(ext)).collect()
            }
        };
        for meta in files {
            let whole =
                |why: String| format!("`{location}` holds `{}`, not a whole Parquet file: {why}", meta.location);
            if meta.size < 12 {
                return Err(whole(format!("{} bytes is too short", meta.size)));
            }
            let read = |range| store.get_range(&meta.location, range);
            let (head, tail) =
                futures::try_join!(read(0..4), read(meta.size - 8..meta.size)).map_err(|e| e.to_string())?;
            let (head, tail): ([u8; 4], [u8; 8]) =
                (head[..].try_into().unwrap_or_default(), tail[..].try_into().unwrap_or_default());
            footer_problem(head, tail, meta.size).map_err(whole)?;
        }
        Ok(())
    }

    pub(super) fn ensure_schema(&self, schema: &str) {
        if let Some(catalog) = self.ctx.catalog("datafusion") {
            if catalog.schema(schema).is_none() {
                let _ = catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()));
            }
        }
    }
}

/// Checks that each Parquet file at `location` (a file, or the files with
/// `ext` in a folder) is whole: the magic at both ends and a footer length
/// that fits the file, before the Parquet reader decodes the footer (a
/// damaged length overflowed it).
fn check_footers(location: &Path, ext: &str) -> Result<(), String> {
    let files: Vec<std::path::PathBuf> = if location.is_dir() {
        walkdir::WalkDir::new(location)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(ext))
            .map(|e| e.into_path())
            .collect()
    } else {
        vec![location.to_path_buf()]
    };
    files.iter().try_for_each(|f| {
        check_footer(f).map_err(|why| format!("`{}` is not a whole Parquet file: {why}", f.display()))
    })
}

fn check_footer(file: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < 12 {
        return Err(format!("{len} bytes is too short"));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 8];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::End(-8)).and_then(|_| f.read_exact(&mut tail)).map_err(|e| e.to_string())?;
    footer_problem(head, tail, len)
}

/// What is wrong with a Parquet file of `len` bytes, from its first 4 and
/// last 8 bytes: a missing magic, or a footer longer than the file.
fn footer_problem(head: [u8; 4], tail: [u8; 8], len: u64) -> Result<(), String> {
    if &head != b"PAR1" || &tail[4..] != b"PAR1" {
        return Err("it does not begin and end with the magic `PAR1`".into());
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > len {
        return Err(format!("its footer claims {footer} bytes of a {len}-byte file"));
    }
    Ok(())
}
