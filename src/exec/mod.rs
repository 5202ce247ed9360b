//! The execution seam: one DataFusion session behind a narrow interface
//! (register inputs, plan a model's SQL, stage and publish its result). The
//! rest of `wh` never touches DataFusion, so another engine can stand here.

pub mod cluster;
pub mod columns;
pub mod contract;
pub mod duckdb;
mod forecast;
mod mock;
pub use forecast::forecast_schema;
pub mod incremental;
pub mod partitioned;
mod sources;
mod write;

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
            ExecError::Io { source, .. } if publish::no_space(source) => Some(
                "the disk is full: free space where the warehouse (for S3: $TMPDIR) lives and rerun; \
                 this table was not published",
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

/// Tells whether a statement only refreshes a database's statistics
/// (`ANALYZE t`, common in dbt hooks): DataFusion keeps none to refresh,
/// so it has nothing to do.
fn refreshes_statistics(statement: &datafusion::sql::parser::Statement) -> bool {
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    matches!(statement, datafusion::sql::parser::Statement::Statement(s) if matches!(**s, Sql::Analyze(_)))
}

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
    ) -> Result<Engine, cluster::ClusterError> {
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

    /// Registers a published table model from its Parquet file (a path or
    /// an `s3://` URL; a folder for the assertion history).
    pub async fn register_published(&self, name: &str, location: &str) -> Result<(), ExecError> {
        let options = ParquetReadOptions::default();
        self.deregister(name);
        self.ctx.register_parquet(TableReference::bare(name), location, options).await.map_err(runtime_error)
    }

    /// Registers one local Parquet file, whatever its name, as `name`.
    pub async fn register_file(&self, name: &str, path: &str) -> Result<(), ExecError> {
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
            Mode::Full if let Some(spec) = &model.config.forecast => {
                Ok(Some((self.plan_forecast(model, spec, now).await?, None)))
            }
            Mode::Full => {
                let df = incremental::without_deleted(model, self.plan(&model.sql).await?)
                    .map_err(|e| ExecError::Runtime { message: e.0 })?;
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

    /// Runs `sql` for its effect on the session (a hook): one statement or
    /// several separated by `;`, each planned once the one before ran (a
    /// table it creates, a setting it changes). Rows returned are dropped.
    pub async fn execute(&self, sql: &str) -> Result<(), ExecError> {
        for statement in self.statements(sql)? {
            if refreshes_statistics(&statement) {
                continue;
            }
            let plan = self.ctx.state().statement_to_plan(statement).await.map_err(sql_error)?;
            let df = self.ctx.execute_logical_plan(plan).await.map_err(sql_error)?;
            self.bounded(async { df.collect().await.map_err(runtime_error) }).await?;
        }
        Ok(())
    }

    /// Parses `sql` into its statements, in the session's dialect.
    fn statements(&self, sql: &str) -> Result<Vec<datafusion::sql::parser::Statement>, ExecError> {
        let dialect = self.ctx.state().config().options().sql_parser.dialect;
        let parser = datafusion::sql::sqlparser::dialect::dialect_from_str(dialect).ok_or_else(|| ExecError::Sql {
            message: format!("the session's SQL dialect `{dialect}` is unknown"),
            location: None,
            hint: None,
        })?;
        let mut parser = datafusion::sql::parser::DFParserBuilder::new(sql)
            .with_dialect(parser.as_ref())
            .build()
            .map_err(sql_error)?;
        Ok(parser.parse_statements().map_err(sql_error)?.into())
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
