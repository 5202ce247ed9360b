//! The execution seam: one DataFusion session behind a narrow interface
//! (register inputs, plan a model's SQL, stage and publish its result). The
//! rest of `wh` never touches DataFusion, so another engine can stand here.

pub mod cluster;
pub mod contract;
pub mod duckdb;
pub mod incremental;
pub mod partitioned;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionConfig, SessionContext};

use crate::compile::CompiledSource;
use crate::diagnostic::Location;
use crate::project::config::FileFormat;
use crate::storage::publish::{self, Staged};
pub use incremental::Mode;

/// A failure while planning or running SQL, or reading inputs.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The SQL does not parse or plan; `location` is in the compiled SQL.
    #[error("{message}")]
    Sql { message: String, location: Option<(usize, usize)>, hint: Option<String> },
    /// The query failed while running.
    #[error("{message}")]
    Runtime { message: String },
    /// The query needed more memory than `--memory-limit` gives it.
    #[error("{message}")]
    Memory { message: String },
    /// A query on a cluster did not finish within the job timeout.
    #[error("{message}")]
    Timeout { message: String },
    /// A source's files cannot be read.
    #[error("{message}")]
    Source { message: String, location: Location, hint: Option<String> },
    /// An upstream model needed by this run is not available.
    #[error("{message}")]
    Upstream { message: String, hint: Option<String> },
    /// An incremental build or snapshot cannot combine its new rows with
    /// the published table.
    #[error("{message}")]
    Incremental { message: String, hint: Option<String> },
    #[error("cannot write `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ExecError {
    /// Returns the hint, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ExecError::Sql { hint, .. }
            | ExecError::Source { hint, .. }
            | ExecError::Upstream { hint, .. }
            | ExecError::Incremental { hint, .. } => hint.as_deref(),
            ExecError::Memory { .. } => {
                Some("raise --memory-limit, or run fewer models at once (--threads) so that each gets a larger share")
            }
            ExecError::Timeout { .. } => Some(
                "check that the cluster's executors are alive (their logs say why one stopped); \
                 a query that needs longer needs a larger --job-timeout (or the target's `job_timeout:`)",
            ),
            _ => None,
        }
    }
}

fn sql_error(err: DataFusionError) -> ExecError {
    let location = err.diagnostic().and_then(|d| d.span).map(|s| (s.start.line as usize, s.start.column as usize));
    let message = err.strip_backtrace();
    // Parser errors carry their position only in the text.
    let location = location.or_else(|| {
        let at = message.rfind("at Line: ")?;
        let rest = &message[at + 9..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((line.parse().ok()?, col.parse().ok()?))
    });
    let hint = err.diagnostic().and_then(|d| d.helps.first()).map(|h| h.message.clone());
    ExecError::Sql { message, location, hint }
}

pub fn runtime_error(err: DataFusionError) -> ExecError {
    if matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)) {
        return ExecError::Memory { message: err.strip_backtrace() };
    }
    ExecError::Runtime { message: err.strip_backtrace() }
}

/// What a table model produced.
#[derive(Debug)]
pub struct TableOutput {
    pub staged: Staged,
    pub schema: SchemaRef,
    /// Registered from memory (else from the staged file, which moves when
    /// published: register the published table then).
    pub held: bool,
    /// What its operators spilled to disk under the memory limit.
    pub spilled_bytes: usize,
}

/// Rows a seed's column types are inferred from (all of any seed).
const SEED_INFER_ROWS: usize = 10_000_000;

/// Tables up to this size (in Arrow memory) stay in memory for their
/// readers; larger ones are read back from their files.
pub const HOLD_BYTES: usize = 256 << 20;

/// Sums what the operators of a finished plan spilled to disk.
fn spilled_bytes(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> usize {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0);
    own + plan.children().into_iter().map(|c| spilled_bytes(c.as_ref())).sum::<usize>()
}

/// Plan nodes a query may reach once its views are inlined. Deep chains of
/// views that each read several others grow exponentially; past this the
/// model fails with a hint instead of exhausting memory.
pub const MAX_INLINED_PLAN_NODES: u64 = 100_000;

/// One DataFusion session for a whole command.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    /// Inlined plan size of each registered view.
    view_sizes: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    memory_limit: Option<usize>,
    /// On a cluster: where the tables the local engine would hold in
    /// memory are written for the executors.
    scratch: Option<Arc<Scratch>>,
    /// On a cluster: how long one query may run (a lost executor can leave
    /// a Ballista job waiting forever).
    job_timeout: Option<std::time::Duration>,
}

/// A cluster session's files for its executors, under `_wh/scratch/<run>/`
/// of the warehouse (which every executor reaches).
struct Scratch {
    warehouse: crate::storage::Warehouse,
    run: String,
    files: std::sync::atomic::AtomicUsize,
}

/// The session settings of both engines.
fn session_config(partitions: Option<usize>) -> SessionConfig {
    // DATAFUSION_* environment variables tune the session (e.g.
    // DATAFUSION_EXECUTION_BATCH_SIZE); wh's own settings come after.
    let mut config = SessionConfig::from_env().unwrap_or_default().with_information_schema(true);
    if let Some(p) = partitions {
        config = config.with_target_partitions(p.max(1));
    }
    config.options_mut().sql_parser.collect_spans = true;
    // Strings read from Parquet as plain UTF-8, not views: window
    // functions over view arrays gathered from many batches ran for
    // minutes and took 20 GB at scale 30 (mart_customer_rfm), and every
    // table is written as plain UTF-8 anyway. Ballista needs the same: its
    // Arrow Flight frames of view arrays grow too large to send.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config
}

impl Engine {
    /// Creates a session; `partitions` caps DataFusion's parallelism per
    /// query, `memory_limit` (bytes) bounds what its operators hold: sorts,
    /// aggregations and joins spill to the system's temporary folder
    /// beyond it, or fail when they cannot.
    pub fn new(partitions: Option<usize>, memory_limit: Option<usize>) -> Engine {
        let config = session_config(partitions);
        let ctx = match memory_limit {
            Some(limit) => {
                let pool = Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(limit));
                match datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_memory_pool(pool).build_arc() {
                    Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
                    Err(e) => {
                        eprintln!("warning: the memory limit is not applied: {}", e.strip_backtrace());
                        SessionContext::new_with_config(config)
                    }
                }
            }
            None => SessionContext::new_with_config(config),
        };
        Engine { ctx, view_sizes: Arc::default(), memory_limit, scratch: None, job_timeout: None }
    }

    /// Creates a session whose queries run on a Ballista cluster (the
    /// scheduler at `df://host:port`, else one in this process) and read
    /// these stores; what the local engine holds in memory it writes
    /// under the warehouse's `_wh/scratch/<run>/` instead.
    pub async fn on_cluster(
        partitions: Option<usize>,
        cluster: &cluster::Cluster<'_>,
        stores: &crate::storage::Stores,
        warehouse: &crate::storage::Warehouse,
    ) -> Result<Engine, String> {
        let ctx = cluster::session(session_config(partitions), cluster.scheduler, cluster.s3).await?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let scratch = Scratch { warehouse: warehouse.clone(), run, files: Default::default() };
        let engine = Engine {
            ctx,
            view_sizes: Arc::default(),
            memory_limit: None,
            scratch: Some(Arc::new(scratch)),
            job_timeout: Some(cluster.job_timeout),
        };
        for (bucket, store) in stores {
            engine.register_store(bucket, store.clone());
        }
        Ok(engine)
    }

    /// Removes the files written for the cluster's executors.
    pub async fn remove_scratch(&self) {
        if let Some(s) = &self.scratch {
            s.warehouse.remove_scratch(&s.run).await;
        }
    }

    /// Runs `work` (queries on the engine) within the job timeout, if any.
    /// Dropping a Ballista query's stream abandons its job.
    async fn bounded<T>(&self, work: impl std::future::Future<Output = Result<T, ExecError>>) -> Result<T, ExecError> {
        let Some(limit) = self.job_timeout else {
            return work.await;
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(ExecError::Timeout {
                message: format!(
                    "the query did not finish within the job timeout of {} on the Ballista cluster \
                     (an executor may have been lost while it ran)",
                    humantime::format_duration(limit)
                ),
            }),
        }
    }

    /// Writes `batches` for the executors and registers them as `name`.
    async fn register_shared(
        &self,
        scratch: &Scratch,
        name: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), ExecError> {
        let n = scratch.files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file_name = format!("{n:05}_{name}.parquet");
        let dir = scratch.warehouse.scratch_dir(&scratch.run);
        let io = |source| ExecError::Io { path: dir.join(&file_name), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let staged = publish::stage(batches, &schema, &dir.join(&file_name)).map_err(io)?;
        publish::publish(&staged).map_err(io)?;
        self.register_file(name, &self.share(scratch, &dir.join(&file_name)).await?).await
    }

    /// Returns where the executors read a local file written for them
    /// (its name is unique: a staged temporary file, or a numbered one).
    async fn share(&self, scratch: &Scratch, file: &Path) -> Result<String, ExecError> {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let rel = format!("{}/{}/{name}", crate::storage::SCRATCH, scratch.run);
        scratch.warehouse.share(file, &rel).await.map_err(|e| ExecError::Runtime { message: e.to_string() })
    }

    /// Reads the SQL of `dialect`: DuckDB's parser, function names and
    /// division for dbt projects.
    pub fn with_dialect(self, dialect: duckdb::SqlDialect) -> Engine {
        if dialect == duckdb::SqlDialect::DuckDb {
            {
                let state = self.ctx.state_ref();
                let mut state = state.write();
                duckdb::configure(state.config_mut());
            }
            duckdb::register(&self.ctx);
        }
        self
    }

    /// Creates a session that reads `s3://` URLs of these buckets.
    pub fn with_stores(
        partitions: Option<usize>,
        memory_limit: Option<usize>,
        stores: &crate::storage::Stores,
    ) -> Engine {
        let engine = Engine::new(partitions, memory_limit);
        for (bucket, store) in stores {
            engine.register_store(bucket, store.clone());
        }
        engine
    }

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
    async fn declared_csv_schema(
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
    async fn register_url_glob(
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

    fn ensure_schema(&self, schema: &str) {
        if let Some(catalog) = self.ctx.catalog("datafusion") {
            if catalog.schema(schema).is_none() {
                let _ = catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()));
            }
        }
    }

    /// Registers a published table model from its Parquet file (a path or
    /// an `s3://` URL; a folder for the assertion history).
    pub async fn register_published(&self, name: &str, location: &str) -> Result<(), ExecError> {
        let options = ParquetReadOptions::default();
        self.deregister(name);
        self.ctx.register_parquet(TableReference::bare(name), location, options).await.map_err(runtime_error)
    }

    /// Registers one local Parquet file, whatever its name, as `name`.
    async fn register_file(&self, name: &str, path: &str) -> Result<(), ExecError> {
        let options = ParquetReadOptions { file_extension: "", ..Default::default() };
        self.deregister(name);
        self.ctx.register_parquet(TableReference::bare(name), path, options).await.map_err(runtime_error)
    }

    /// Lets queries read `s3://bucket/...` through `store`.
    pub fn register_store(&self, bucket: &str, store: Arc<dyn object_store::ObjectStore>) {
        if let Some(url) = crate::storage::bucket_url(bucket) {
            self.ctx.register_object_store(&url, store);
        }
    }

    /// Plans `sql` and registers it as a view named `name`.
    pub async fn register_view(&self, name: &str, sql: &str) -> Result<(), ExecError> {
        let df = self.plan(sql).await?;
        let size = self.inlined_size(df.logical_plan());
        self.ctx.register_table(TableReference::bare(name), df.into_view()).map_err(runtime_error)?;
        self.view_sizes.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), size);
        Ok(())
    }

    /// Plans a query without running it; refuses plans that would grow too
    /// large once their views are inlined.
    pub async fn plan(&self, sql: &str) -> Result<DataFrame, ExecError> {
        let df = self.ctx.sql(sql).await.map_err(sql_error)?;
        let size = self.inlined_size(df.logical_plan());
        if size > MAX_INLINED_PLAN_NODES {
            return Err(ExecError::Sql {
                message: format!(
                    "the query would expand to about {size} plan nodes once its views are inlined \
                     (limit {MAX_INLINED_PLAN_NODES}): its views read other views several times over"
                ),
                location: None,
                hint: Some("materialize some of the upstream views as tables (`+materialized: table`)".into()),
            });
        }
        Ok(df)
    }

    /// Counts the plan's nodes, each scan of a registered view counting as
    /// that view's own inlined size.
    fn inlined_size(&self, plan: &datafusion::logical_expr::LogicalPlan) -> u64 {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        let sizes = self.view_sizes.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: u64 = 0;
        let _ = plan.apply(|node| {
            total = total.saturating_add(1);
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                if let Some(v) = sizes.get(scan.table_name.table()) {
                    total = total.saturating_add(*v);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        total
    }

    /// Plans the next version of a table model, with how many new rows an
    /// incremental build merges; `None` when an incremental build has no
    /// new rows and the same columns, so the published table stays as it
    /// is. For [`Mode::Incremental`] and [`Mode::Snapshot`] with a previous
    /// version, that version must be registered under the model's name.
    pub async fn plan_model(
        &self,
        model: &crate::compile::CompiledModel,
        mode: Mode,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(DataFrame, Option<usize>)>, ExecError> {
        let fail = |message: String, hint: &str| ExecError::Incremental { message, hint: Some(hint.to_string()) };
        match mode {
            Mode::Full => {
                let df = incremental::without_deleted(model, self.plan(&model.sql).await?)
                    .map_err(|message| ExecError::Runtime { message })?;
                Ok(Some((df, None)))
            }
            Mode::Incremental => {
                let sql = model.incremental_sql.as_deref().unwrap_or(&model.sql);
                // The new rows are read more than once (their keys, then
                // the rows): computed once, held in memory.
                let new_name = format!("__wh_new_{}", model.name);
                let (_, batches) = self.materialize(&new_name, self.plan(sql).await?).await?;
                let new_rows = batches.iter().map(RecordBatch::num_rows).sum();
                let frames = (self.ctx.table(new_name.as_str()).await, self.ctx.table(model.name.as_str()).await);
                self.deregister(&new_name);
                let (new, published) = match frames {
                    (Ok(n), Ok(p)) => (n, p),
                    (Err(e), _) | (_, Err(e)) => return Err(runtime_error(e)),
                };
                if new_rows == 0
                    && incremental::same_columns(model, published.schema().as_arrow(), new.schema().as_arrow())
                {
                    return Ok(None);
                }
                let merged = incremental::merge(model, published, new).await.map_err(|m| {
                    fail(
                        format!("cannot merge the new rows into the published table: {m}"),
                        "fix the model or its config, or rebuild the table from scratch with --full-refresh",
                    )
                })?;
                Ok(Some((merged, Some(new_rows))))
            }
            Mode::Snapshot { previous } => {
                let source_name = format!("__wh_src_{}", model.name);
                let (schema, _) = self.materialize(&source_name, self.plan(&model.sql).await?).await?;
                let result = self.plan_snapshot(model, &source_name, &schema, previous, now).await;
                self.deregister(&source_name);
                Ok(Some((result?, None)))
            }
        }
    }

    async fn plan_snapshot(
        &self,
        model: &crate::compile::CompiledModel,
        source_name: &str,
        source: &SchemaRef,
        previous: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<DataFrame, ExecError> {
        let source_rel = crate::compile::relation(source_name);
        let keys = &model.config.unique_key;
        // Missing key columns are reported by the snapshot's SQL below.
        if keys.iter().all(|k| source.field_with_name(k).is_ok()) {
            let quoted: Vec<String> = keys.iter().map(|k| crate::compile::relation(k)).collect();
            let sql = format!(
                "select count(*) from (select 1 from {source_rel} group by {} having count(*) > 1)",
                quoted.join(", ")
            );
            let (_, batches) = self.query(&sql).await?;
            let repeated = batches
                .first()
                .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>())
                .map_or(0, |a| a.value(0));
            if repeated > 0 {
                return Err(ExecError::Incremental {
                    message: format!("{repeated} unique_key value(s) appear more than once in the snapshot's query"),
                    hint: Some("a snapshot's query returns one row per unique_key: deduplicate it".into()),
                });
            }
        }
        let history_rel = crate::compile::relation(&model.name);
        let history = if previous { Some(self.relation_schema(&history_rel).await?) } else { None };
        let sql = incremental::snapshot_sql(model, source, history.as_deref(), &source_rel, &history_rel, now)
            .map_err(|m| ExecError::Incremental {
                message: format!("cannot snapshot: {m}"),
                hint: Some("check the snapshot's unique_key, updated_at and check_cols against its query".into()),
            })?;
        self.plan(&sql).await
    }

    /// Runs a planned table model, casts the result for BI readers and
    /// streams it to a temporary file beside `dest` (not yet published),
    /// registered as `name` for the model's assertions and readers. A
    /// result of at most [`HOLD_BYTES`] (none under a memory limit) is also kept in memory and registered
    /// from there, so that its readers skip decoding it; a larger one is
    /// read back from its file (in the page cache), so that the largest
    /// tables are not held while the models after them run.
    pub async fn stage_table(&self, name: &str, df: DataFrame, dest: &Path) -> Result<TableOutput, ExecError> {
        self.bounded(self.stage_table_unbounded(name, df, dest)).await
    }

    async fn stage_table_unbounded(&self, name: &str, df: DataFrame, dest: &Path) -> Result<TableOutput, ExecError> {
        use futures::StreamExt;
        let io = |source| ExecError::Io { path: dest.to_path_buf(), source };
        let schema = publish::bi_schema(df.schema().as_arrow());
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await.map_err(runtime_error)?;
        let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), task).map_err(runtime_error)?;
        let mut sink = publish::ParquetSink::create(&schema, dest).map_err(io)?;
        // Under a memory limit nothing is held: the pool does not see it;
        // on a cluster the executors cannot see wh's memory.
        let hold_bytes = if self.memory_limit.is_some() || self.scratch.is_some() { 0 } else { HOLD_BYTES };
        // (On a cluster not even an empty result: a table in memory cannot
        // be sent to the executors.)
        let mut held: Option<Vec<RecordBatch>> = if self.scratch.is_some() { None } else { Some(Vec::new()) };
        let mut held_size = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(runtime_error)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = publish::to_bi(&batch, &schema).map_err(|e| ExecError::Runtime { message: e.to_string() })?;
            if held.is_some() {
                held_size += batch.get_array_memory_size();
                if held_size > hold_bytes {
                    held = None;
                }
            }
            if let Some(h) = held.as_mut() {
                h.push(batch.clone());
            }
            sink.write(batch).await.map_err(io)?;
        }
        drop(stream);
        let staged = sink.finish().await.map_err(io)?;
        let in_memory = held.is_some();
        match (held, &self.scratch) {
            (Some(batches), _) => self.register_batches(name, schema.clone(), batches)?,
            (None, Some(scratch)) => self.register_file(name, &self.share(scratch, &staged.temp).await?).await?,
            (None, None) => self.register_file(name, &staged.temp.to_string_lossy()).await?,
        }
        Ok(TableOutput { staged, schema, held: in_memory, spilled_bytes: spilled_bytes(plan.as_ref()) })
    }

    /// Registers `batches` in memory as `name`, replacing what had that name.
    fn register_batches(&self, name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(), ExecError> {
        let table = MemTable::try_new(schema, vec![batches]).map_err(runtime_error)?;
        self.deregister(name);
        self.ctx.register_table(TableReference::bare(name), Arc::new(table)).map_err(runtime_error)?;
        Ok(())
    }

    /// Returns whether `name` is held in memory (not read from a file).
    pub async fn holds(&self, name: &str) -> bool {
        matches!(self.ctx.table_provider(TableReference::bare(name)).await, Ok(p) if p.is::<MemTable>())
    }

    /// Runs a planned table model, casts the result for BI readers, and
    /// registers it in memory as `name` (replacing what had that name, such
    /// as its previous version) for downstream models.
    pub async fn materialize(&self, name: &str, df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>), ExecError> {
        let schema = publish::bi_schema(df.schema().as_arrow());
        let batches = self.bounded(async { df.collect().await.map_err(runtime_error) }).await?;
        let batches: Vec<RecordBatch> = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| publish::to_bi(b, &schema))
            .collect::<Result<_, _>>()
            .map_err(|e| ExecError::Runtime { message: e.to_string() })?;
        match &self.scratch {
            Some(scratch) => self.register_shared(scratch, name, schema.clone(), &batches).await?,
            None => self.register_batches(name, schema.clone(), batches.clone())?,
        }
        Ok((schema, batches))
    }

    /// Forgets the relation `name`, if registered.
    pub fn deregister(&self, name: &str) {
        let _ = self.ctx.deregister_table(TableReference::bare(name));
    }

    /// Registers a table provider (a Delta table) as `name`.
    pub fn register_provider(
        &self,
        name: &str,
        provider: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> Result<(), ExecError> {
        self.deregister(name);
        self.ctx.register_table(TableReference::bare(name), provider).map_err(runtime_error)?;
        Ok(())
    }

    /// Runs `sql` and returns its batches.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ExecError> {
        let df = self.plan(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = self.bounded(async { df.collect().await.map_err(runtime_error) }).await?;
        Ok((schema, batches))
    }

    /// Plans `sql` and returns its logical plan, unoptimized.
    pub async fn logical_plan(&self, sql: &str) -> Result<datafusion::logical_expr::LogicalPlan, ExecError> {
        Ok(self.plan(sql).await?.logical_plan().clone())
    }

    /// Registers an empty table with `schema`, so that queries over it plan
    /// without data.
    pub fn register_schema_only(&self, name: &str, schema: SchemaRef) -> Result<(), ExecError> {
        self.register_batches(name, schema, Vec::new())
    }

    /// Registers an empty table with `schema` that queries may also run
    /// over (on a cluster, an empty file).
    pub async fn register_empty(&self, name: &str, schema: SchemaRef) -> Result<(), ExecError> {
        match &self.scratch {
            Some(scratch) => self.register_shared(scratch, name, schema, &[]).await,
            None => self.register_schema_only(name, schema),
        }
    }

    /// Returns the schema of a registered relation (SQL name, quoted).
    pub async fn relation_schema(&self, relation: &str) -> Result<SchemaRef, ExecError> {
        let df = self.plan(&format!("select * from {relation}")).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Returns the number of rows of a registered relation.
    pub async fn row_count(&self, name: &str) -> Result<usize, ExecError> {
        let df = self.ctx.table(TableReference::bare(name)).await.map_err(runtime_error)?;
        self.bounded(async { df.count().await.map_err(runtime_error) }).await
    }

    /// Returns whether a relation named `name` is registered.
    /// The registered relation `name`, to build on with DataFrame calls.
    pub async fn table(&self, name: &str) -> Result<DataFrame, DataFusionError> {
        self.ctx.table(name).await
    }

    pub fn has_table(&self, name: &str) -> bool {
        self.ctx.table_exist(TableReference::bare(name)).unwrap_or(false)
    }
}
