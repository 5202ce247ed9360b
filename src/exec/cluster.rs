//! `--engine ballista`: the models' queries on the executors of a Ballista
//! cluster. A Ballista session plans as the local one does; its physical
//! planner hands each query to the scheduler, which splits it into stages
//! on the executors, and the result comes back to wh as batches, which wh
//! writes, audits and publishes as it does locally.
//!
//! Without a scheduler address, the cluster is Ballista's standalone one:
//! a scheduler and an executor started in the wh process, on loopback.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::config::ConfigExtension;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionConfig;

use crate::project::config::S3Settings;

datafusion::common::extensions_options! {
    /// The `s3.*` settings that Ballista's scheduler and executor binaries
    /// build their S3 stores from (their `S3Options`), sent with every job.
    /// Credentials are not sent: executors take theirs from their own
    /// environment (`AWS_ACCESS_KEY_ID`, ...).
    pub struct S3Options {
        pub access_key_id: Option<String>, default = None
        pub secret_access_key: Option<String>, default = None
        pub session_token: Option<String>, default = None
        pub region: Option<String>, default = None
        pub endpoint: Option<String>, default = None
        pub allow_http: Option<bool>, default = None
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
            ..Default::default()
        }
    }
}

/// Every session on a cluster shares one runtime: the in-process
/// executor reads through the object stores the sessions register.
fn shared_runtime() -> Arc<RuntimeEnv> {
    static RUNTIME: std::sync::OnceLock<Arc<RuntimeEnv>> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Arc::new(RuntimeEnv::default())).clone()
}

#[cfg(feature = "ballista")]
mod imp {
    use std::time::Duration;

    use ballista_core::extension::{SessionConfigExt, SessionStateExt};
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use datafusion::execution::{SessionState, SessionStateBuilder};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Task slots of the in-process executor (see [`start_standalone`]).
    pub const TASK_SLOTS: usize = 64;

    /// The in-process cluster's scheduler, started by the first session.
    static STANDALONE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

    fn state(config: SessionConfig) -> SessionState {
        SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(super::shared_runtime())
            .with_default_features()
            .build()
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
    pub async fn session(config: SessionConfig, scheduler: Option<&str>) -> Result<SessionContext, String> {
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

    /// The names of the functions Ballista's executor binary decodes plans
    /// with (its default registry: DataFusion's core scalar, aggregate and
    /// window functions, not the nested ones such as `generate_series` or
    /// `array_agg`'s companions `make_array`, `unnest`...).
    pub fn known_functions() -> std::collections::BTreeSet<String> {
        use datafusion::execution::FunctionRegistry;
        let registry = ballista_core::registry::BallistaFunctionRegistry::default();
        let mut out = std::collections::BTreeSet::new();
        out.extend(registry.udfs());
        out.extend(registry.udafs());
        out.extend(registry.udwfs());
        out
    }
}

/// Returns a session on the cluster (see [`imp::session`]).
pub async fn session(
    config: SessionConfig,
    scheduler: Option<&str>,
    s3: &S3Settings,
) -> Result<datafusion::prelude::SessionContext, String> {
    let config = config.with_option_extension(S3Options::from_settings(s3));
    #[cfg(feature = "ballista")]
    {
        imp::session(config, scheduler).await
    }
    #[cfg(not(feature = "ballista"))]
    {
        let _ = (config, scheduler);
        Err("this wh was built without the `ballista` feature".into())
    }
}

/// The functions the executors know, by name and alias; `None` when wh is
/// built without Ballista.
pub fn known_functions() -> Option<BTreeSet<String>> {
    #[cfg(feature = "ballista")]
    {
        Some(imp::known_functions())
    }
    #[cfg(not(feature = "ballista"))]
    {
        None
    }
}

/// What the selected models need that a Ballista cluster cannot give, one
/// `(model, why)` each, found before anything runs: Delta tables (their
/// delta-rs table provider cannot be sent to executors) and functions the
/// executors do not know (wh's DuckDB functions for dbt projects).
/// Views and ephemerals read by a selected model run inside its query, so
/// their functions count too.
pub fn unsupported(
    compiled: &crate::compile::Compiled,
    graph: &crate::graph::Graph,
    selected: &BTreeSet<String>,
    lineage: &crate::lineage::ProjectLineage,
) -> Vec<(String, String)> {
    let functions = &lineage.functions;
    let Some(known) = known_functions() else {
        return selected
            .iter()
            .take(1)
            .map(|m| (m.clone(), "this wh was built without the `ballista` feature".to_string()))
            .collect();
    };
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
        // Its own SQL and the inlined views and ephemerals upstream of it.
        let inlined = graph
            .ancestors(name, None)
            .into_iter()
            .filter(|a| compiled.models.get(a).is_some_and(|m| !m.config.materialized.writes_table()));
        let mut missing = BTreeSet::new();
        for m in std::iter::once(name.clone()).chain(inlined) {
            for f in functions.get(&m).into_iter().flatten() {
                if !known.contains(f) {
                    missing.insert(f.clone());
                }
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.into_iter().collect();
            out.push((name.clone(), format!("calls {}, which Ballista's executors do not have", list.join(", "))));
        }
        let depth = inlined_depth(compiled, lineage, name);
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
fn inlined_depth(compiled: &crate::compile::Compiled, lineage: &crate::lineage::ProjectLineage, name: &str) -> usize {
    let own = lineage.depths.get(name).copied().unwrap_or(0);
    let model = &compiled.models[name];
    let deepest_view = model
        .refs
        .iter()
        .filter(|r| compiled.models.get(*r).is_some_and(|m| !m.config.materialized.writes_table()))
        .map(|r| inlined_depth(compiled, lineage, r))
        .max()
        .unwrap_or(0);
    own + deepest_view
}
