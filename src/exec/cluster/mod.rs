//! `--engine ballista`: the models' queries on the executors of a Ballista
//! cluster. A Ballista session plans as the local one does; its physical
//! planner hands each query to the scheduler, which splits it into stages
//! on the executors, and the result comes back to wh as batches, which wh
//! writes, audits and publishes as it does locally.
//!
//! Without a scheduler address, the cluster is Ballista's standalone one:
//! a scheduler and an executor started in the wh process, on loopback.
//! A real cluster is wh's own processes (`wh cluster scheduler`, `wh
//! cluster executor`, see [`node`]), which know every function wh plans
//! with.

#[cfg(feature = "ballista")]
pub mod node;

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::config::ConfigExtension;
use datafusion::prelude::SessionConfig;

use crate::project::config::S3Settings;

datafusion::common::extensions_options! {
    /// The `s3.*` settings that wh's scheduler and executors build their
    /// S3 stores from, sent with every job. Credentials are never sent:
    /// each process takes its own from its environment
    /// (`AWS_ACCESS_KEY_ID`, ...).
    pub struct S3Options {
        pub region: Option<String>, default = None
        pub endpoint: Option<String>, default = None
        pub allow_http: Option<bool>, default = None
        pub path_style: Option<bool>, default = None
    }
}

impl ConfigExtension for S3Options {
    const PREFIX: &'static str = "s3";
}

impl S3Options {
    /// The target's S3 settings (else the standard variables) as the
    /// executors' options.
    pub fn from_settings(s3: &S3Settings) -> S3Options {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        S3Options {
            region: s3
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or_else(|| Some("us-east-1".into())),
            endpoint: s3.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")).or_else(|| env("AWS_ENDPOINT")),
            allow_http: s3.allow_http.or_else(|| env("AWS_ALLOW_HTTP").map(|v| v == "true")),
            path_style: s3.path_style,
        }
    }

    /// The settings a cluster process builds its S3 stores from.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            path_style: self.path_style,
            allow_http: self.allow_http,
        }
    }
}

/// A cluster that cannot be addressed, reached or started.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClusterError {
    pub message: String,
}

impl From<String> for ClusterError {
    fn from(message: String) -> Self {
        ClusterError { message }
    }
}

/// Splits a scheduler address, `df://host:port`, into host and port.
pub fn scheduler_host_port(address: &str) -> Result<(String, u16), ClusterError> {
    let bad = || format!("`{address}` is not a scheduler address: expected df://host:port");
    let rest = address.strip_prefix("df://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad().into());
    }
    Ok((host.to_string(), port))
}

#[cfg(feature = "ballista")]
mod imp {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use ballista_core::extension::{SessionConfigExt, SessionStateExt};
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::execution::SessionState;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Task slots of the in-process executor (see [`start_standalone`]).
    pub const TASK_SLOTS: usize = 64;

    /// The in-process cluster's scheduler, started by the first session.
    static STANDALONE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

    /// Every session on a cluster shares one runtime: the in-process
    /// executor reads through the object stores the sessions register.
    fn shared_runtime() -> Arc<RuntimeEnv> {
        static RUNTIME: OnceLock<Arc<RuntimeEnv>> = OnceLock::new();
        RUNTIME.get_or_init(Arc::default).clone()
    }

    fn state(config: SessionConfig) -> SessionState {
        super::node::cluster_state(config, shared_runtime())
    }

    /// Starts Ballista's standalone scheduler and one executor; returns the
    /// scheduler's URL.
    async fn start_standalone(config: SessionConfig) -> Result<String, String> {
        let state = state(config.upgrade_for_ballista());
        let addr = ballista_scheduler::standalone::new_standalone_scheduler_from_state(&state)
            .await
            .map_err(|e| format!("cannot start the in-process Ballista scheduler: {e}"))?;
        let url = format!("http://localhost:{}", addr.port());
        let scheduler = connect(&url, Duration::from_secs(10)).await?;
        // Ballista 55 never finishes a stage with more tasks than the
        // executors have slots (a four-way `union all` on 2 slots hangs):
        // the slots are many, and the OS shares the cores among them.
        ballista_executor::new_standalone_executor_from_state(scheduler, TASK_SLOTS, &state)
            .await
            .map_err(|e| format!("cannot start the in-process Ballista executor: {e}"))?;
        Ok(url)
    }

    /// Connects to a scheduler, retrying until `patience` has passed.
    async fn connect(url: &str, patience: Duration) -> Result<SchedulerGrpcClient<tonic::transport::Channel>, String> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match SchedulerGrpcClient::connect(url.to_string()).await {
                Ok(client) => return Ok(client),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("cannot reach the Ballista scheduler at {url}: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Returns a session whose queries run on the cluster: the scheduler at
    /// `scheduler` (`df://host:port`), else the in-process cluster.
    pub async fn session(
        config: SessionConfig,
        scheduler: Option<&str>,
    ) -> Result<SessionContext, super::ClusterError> {
        let url = match scheduler {
            Some(address) => {
                let url = address.replacen("df://", "http://", 1);
                // A scheduler that is not there stops the command before
                // any work, not at the first model.
                connect(&url, Duration::from_secs(5)).await?;
                url
            }
            None => STANDALONE.get_or_try_init(|| start_standalone(config.clone())).await?.clone(),
        };
        let state = state(config).upgrade_for_ballista(url).map_err(|e| e.strip_backtrace())?;
        Ok(SessionContext::new_with_state(state))
    }
}

/// Where and how a build's queries run on a cluster.
#[derive(Debug, Clone)]
pub struct Cluster<'a> {
    /// The scheduler, `df://host:port`; `None` starts one in this process.
    pub scheduler: Option<&'a str>,
    pub s3: &'a S3Settings,
    /// How long one query may run before its model fails.
    pub job_timeout: std::time::Duration,
}

/// Returns a session on the cluster (see [`imp::session`]).
pub async fn session(
    config: SessionConfig,
    scheduler: Option<&str>,
    s3: &S3Settings,
) -> Result<datafusion::prelude::SessionContext, ClusterError> {
    let config = config.with_option_extension(S3Options::from_settings(s3));
    #[cfg(feature = "ballista")]
    {
        imp::session(config, scheduler).await
    }
    #[cfg(not(feature = "ballista"))]
    {
        let _ = (config, scheduler);
        Err(format!("this wh was built without the `ballista` feature; {}", crate::storage::ALL_FEATURES_HINT).into())
    }
}

/// What the selected models need that a Ballista cluster cannot give, one
/// `(model, why)` each, found before anything runs: Delta tables (their
/// delta-rs table provider cannot be sent to executors) and plans nested
/// deeper than the scheduler decodes. (Functions are no concern: wh's
/// executors know every function wh plans with.)
pub fn unsupported(
    compiled: &crate::compile::Compiled,
    selected: &BTreeSet<String>,
    depths: &BTreeMap<String, usize>,
) -> Vec<(String, String)> {
    if cfg!(not(feature = "ballista")) {
        return selected
            .iter()
            .take(1)
            .map(|m| {
                (
                    m.clone(),
                    format!("this wh was built without the `ballista` feature; {}", crate::storage::ALL_FEATURES_HINT),
                )
            })
            .collect();
    }
    let mut out = Vec::new();
    for name in selected {
        let model = &compiled.models[name];
        if model.is_delta() {
            out.push((
                name.clone(),
                "writes a Delta table: delta-rs's table provider cannot be sent to Ballista's executors".into(),
            ));
        }
        if let Some(delta) = model.refs.iter().find(|r| compiled.models.get(*r).is_some_and(|m| m.is_delta())) {
            out.push((
                name.clone(),
                format!("reads the Delta table `{delta}`, which Ballista's executors cannot open"),
            ));
        }
        let depth = inlined_depth(compiled, depths, name);
        if depth > MAX_PLAN_DEPTH {
            out.push((
                name.clone(),
                format!(
                    "its plan is {depth} operators deep (views inlined); Ballista 55 sends plans as protobuf, \
                     which its scheduler decodes to a nesting of 100 (about {MAX_PLAN_DEPTH} operators)"
                ),
            ));
        }
    }
    out
}

/// The deepest plan Ballista's scheduler decodes: prost's recursion limit
/// of 100 counts two levels per operator, and a few for its schema.
pub const MAX_PLAN_DEPTH: usize = 45;

/// A model's plan depth with the views and ephemerals it reads inlined.
fn inlined_depth(compiled: &crate::compile::Compiled, depths: &BTreeMap<String, usize>, name: &str) -> usize {
    let own = depths.get(name).copied().unwrap_or(0);
    let model = &compiled.models[name];
    let deepest_view = model
        .refs
        .iter()
        .filter(|r| compiled.models.get(*r).is_some_and(|m| !m.config.materialized.writes_table()))
        .map(|r| inlined_depth(compiled, depths, r))
        .max()
        .unwrap_or(0);
    own + deepest_view
}
