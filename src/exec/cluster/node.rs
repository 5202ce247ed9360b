//! `wh cluster scheduler` and `wh cluster executor`: Ballista's scheduler
//! and executor, run from the Ballista libraries wh links, with every
//! function wh's sessions have (DataFusion's, the nested ones such as
//! `generate_series`, and wh's DuckDB functions) and wh's object stores, so
//! that what `wh build` plans locally also runs on the cluster.
//!
//! S3 settings come with each job (`s3.*`, see [`super::S3Options`]);
//! credentials never do: each process takes its own from its environment,
//! as `wh build` does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use super::S3Options;
use crate::project::config::S3Settings;

/// What `wh cluster scheduler` is told.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where it listens for wh and the executors (port 0: any free port).
    pub bind: SocketAddr,
    /// The host name executors and clients reach it by.
    pub external_host: Option<String>,
    /// An executor silent for this long is lost: its tasks run again on
    /// the others.
    pub executor_timeout: Duration,
}

/// What `wh cluster executor` is told.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `df://host:port`.
    pub scheduler: String,
    /// The address its services listen on.
    pub bind_host: String,
    /// The host name other executors and wh fetch results from.
    pub external_host: Option<String>,
    /// Arrow Flight port (results and shuffle data).
    pub port: u16,
    /// gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// Tasks run at once.
    pub slots: usize,
    /// Shuffle files and spills.
    pub work_dir: Option<PathBuf>,
    /// How often it tells the scheduler it is alive.
    pub heartbeat: Duration,
}

/// The session config every cluster process starts from: Ballista's, plus
/// the `s3.*` settings jobs carry.
pub fn cluster_config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_information_schema(true).with_option_extension(S3Options::default())
}

/// A session state with every function a wh session can plan with.
pub fn cluster_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    use datafusion::execution::FunctionRegistry;
    let (scalars, aggregates) = crate::exec::duckdb::functions(&config);
    let mut state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    for udf in scalars {
        let _ = state.register_udf(Arc::new(udf));
    }
    for udaf in aggregates {
        let _ = state.register_udaf(Arc::new(udaf));
    }
    state
}

/// The functions an executor decodes task plans with.
pub fn cluster_functions() -> BallistaFunctionRegistry {
    let state = cluster_state(cluster_config(), Arc::new(RuntimeEnv::default()));
    BallistaFunctionRegistry::from(&state)
}

/// A runtime whose object stores follow a job's `s3.*` settings, with
/// spills under `work_dir`.
fn runtime_for(config: &SessionConfig, work_dir: Option<&PathBuf>) -> Result<Arc<RuntimeEnv>> {
    let s3 = config.options().extensions.get::<S3Options>().cloned().unwrap_or_default();
    let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(ClusterStores::new(s3.settings())));
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir.clone());
    }
    builder.build_arc()
}

/// Local files, and S3 buckets built on first use from the job's settings
/// and this process's credentials.
#[derive(Debug)]
struct ClusterStores {
    s3: S3Settings,
    known: DefaultObjectStoreRegistry,
    buckets: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ClusterStores {
    fn new(s3: S3Settings) -> ClusterStores {
        ClusterStores { s3, known: DefaultObjectStoreRegistry::new(), buckets: RwLock::default() }
    }

    fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        if let Some(store) = self.buckets.read().ok().and_then(|b| b.get(bucket).cloned()) {
            return Ok(store);
        }
        let store =
            crate::storage::s3_store(bucket, &self.s3).map_err(|e| DataFusionError::Configuration(format!("{e}")))?;
        if let Ok(mut buckets) = self.buckets.write() {
            buckets.insert(bucket.to_string(), store.clone());
        }
        Ok(store)
    }
}

impl ObjectStoreRegistry for ClusterStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => self.bucket(bucket),
            ("s3", None) => exec_err!("no bucket in {url}"),
            _ => self.known.get_store(url),
        }
    }
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(opts: SchedulerOptions) -> Result<(), super::ClusterError> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

    let listener =
        tokio::net::TcpListener::bind(opts.bind).await.map_err(|e| format!("cannot listen on {}: {e}", opts.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let host = opts.external_host.clone().unwrap_or_else(|| addr.ip().to_string());
    let timeout = opts.executor_timeout.as_secs().max(2);
    let mut config = SchedulerConfig::default()
        .with_hostname(host.clone())
        .with_port(addr.port())
        .with_override_config_producer(Arc::new(cluster_config))
        .with_override_session_builder(Arc::new(|config: SessionConfig| -> Result<SessionState> {
            let runtime = runtime_for(&config, None)?;
            Ok(cluster_state(config, runtime))
        }));
    config.bind_host = addr.ip().to_string();
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 4).max(1);
    config.no_executors_grace_period_seconds = timeout;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| e.to_string())?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    eprintln!("wh cluster scheduler: listening on df://{host}:{}", addr.port());
    Ok(start_grpc_service_with_listener(listener, scheduler).await.map_err(|e| e.to_string())?)
}

/// Runs an executor until the process is stopped or its scheduler tells
/// it to stop.
pub async fn run_executor(opts: ExecutorOptions) -> Result<(), super::ClusterError> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};

    let (host, port) = super::scheduler_host_port(&opts.scheduler)?;
    let work_dir = match &opts.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Some(dir.clone())
        }
        None => None,
    };
    let spill_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: opts.bind_host.clone(),
        external_host: opts.external_host.clone(),
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        vcores: opts.slots,
        work_dir: work_dir.map(|d| d.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: opts.heartbeat.as_secs().max(1),
        override_function_registry: Some(Arc::new(cluster_functions())),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_runtime_producer: Some(Arc::new(move |config: &SessionConfig| {
            runtime_for(config, spill_dir.as_ref())
        })),
        ..Default::default()
    };
    announce_when_ready(config.health.clone(), opts.scheduler.clone(), opts.slots);
    Ok(start_executor_process(Arc::new(config)).await.map_err(|e| e.to_string())?)
}

/// Says once, on standard error, that the executor's first heartbeat
/// reached the scheduler (what scripts wait for).
fn announce_when_ready(health: ballista_executor::health::ExecutorHealth, scheduler: String, slots: usize) {
    tokio::spawn(async move {
        while !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("wh cluster executor: registered with {scheduler}, {slots} task slots");
    });
}
