//! `wh cluster scheduler` and `wh cluster executor`: the nodes of a
//! Ballista cluster that `wh build --engine ballista --scheduler ...` runs
//! its queries on (see [`crate::exec::cluster::node`]).

use std::process::ExitCode;

use crate::cli::ClusterRole;
use crate::error::Error;

/// The log both roles write to standard error: Ballista's own lines (jobs
/// submitted and finished, tasks run, executors lost) at `info`, the rest
/// at `warn`; `WH_LOG` (env_logger's syntax, e.g. `debug`) overrides it.
#[cfg(feature = "ballista")]
fn start_log() {
    use std::io::Write;
    let filter = std::env::var("WH_LOG")
        .unwrap_or_else(|_| "warn,ballista_scheduler=info,ballista_executor=info,ballista_core=warn".into());
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(|out, record| {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            writeln!(out, "{now} {:5} {}: {}", record.level(), record.target(), record.args())
        })
        .try_init();
}

/// Runs the role until the process is stopped.
#[cfg(feature = "ballista")]
pub fn execute(role: ClusterRole) -> Result<ExitCode, Error> {
    use crate::exec::cluster::node;
    start_log();
    // Plans arrive as nested protobuf messages, decoded recursively: the
    // threads get room for deep ones.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let result = match role {
        ClusterRole::Scheduler { bind, external_host, executor_timeout } => {
            runtime.block_on(node::run_scheduler(node::SchedulerOptions { bind, external_host, executor_timeout }))
        }
        ClusterRole::Executor { scheduler, slots, work_dir, bind_host, external_host, port, grpc_port, heartbeat } => {
            let opts = node::ExecutorOptions {
                scheduler,
                bind_host,
                external_host,
                port,
                grpc_port,
                slots: slots.max(1),
                work_dir,
                heartbeat,
            };
            runtime.block_on(node::run_executor(opts))
        }
    };
    result.map(|()| ExitCode::SUCCESS).map_err(|e| Error::Usage {
        message: e.message,
        hint: Some("see `wh cluster --help`; the log above says what the node did".into()),
    })
}

/// Without Ballista there is no cluster to run.
#[cfg(not(feature = "ballista"))]
pub fn execute(_role: ClusterRole) -> Result<ExitCode, Error> {
    Err(Error::Usage {
        message: "this wh was built without the `ballista` feature".into(),
        hint: Some(crate::storage::ALL_FEATURES_HINT.into()),
    })
}
