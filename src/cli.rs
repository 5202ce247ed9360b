//! The command line (clap derive): commands and the flags they share.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// wh builds a data warehouse from templated SQL models: renders them,
/// runs them on DataFusion in dependency order and publishes Parquet.
#[derive(Debug, Parser)]
#[command(name = "wh", version, about, propagate_version = true, after_help = features_help())]
pub struct Cli {
    #[command(flatten)]
    pub shared: SharedArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which optional features this wh has, and how to get the others.
pub fn features_help() -> String {
    let has = |on: bool| if on { "built in" } else { "not built in" };
    let mut text = format!(
        "Optional features:\n  ballista  --engine ballista and `wh cluster` (a Ballista cluster): {}\n  \
         delta     Delta Lake tables (format='delta'): {}",
        has(cfg!(feature = "ballista")),
        has(cfg!(feature = "delta")),
    );
    if !(cfg!(feature = "ballista") && cfg!(feature = "delta")) {
        text.push_str(
            "\nBuild wh with all of them: cargo build --release --all-features \
             (or --features ballista,delta; scripts/test.sh builds them all)",
        );
    }
    text
}

/// Flags every command accepts, before or after the command name.
#[derive(Debug, Clone, Args)]
pub struct SharedArgs {
    /// The project folder (holding wh_project.yml).
    #[arg(long, global = true, env = "WH_PROJECT_DIR", default_value = ".")]
    pub project_dir: PathBuf,
    /// The target (output environment) from wh_project.yml.
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// Vars as a YAML mapping, overriding wh_project.yml: '{raw_root: data/raw}'.
    #[arg(long, global = true)]
    pub vars: Option<String>,
    /// Where a dbt project's profiles.yml is (default: the project folder,
    /// then ~/.dbt).
    #[arg(long, global = true, env = "DBT_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// How many models run at once.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Memory DataFusion's operators may hold, e.g. 1GB: beyond it sorts,
    /// aggregations and joins spill to the temporary folder (TMPDIR).
    #[arg(long, global = true, env = "WH_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,
    /// Where the models' queries run: this process (local), or a Ballista
    /// cluster (ballista). Default: the target's `engine:`, else local.
    #[arg(long, global = true, env = "WH_ENGINE", value_enum)]
    pub engine: Option<crate::project::config::EngineName>,
    /// The Ballista scheduler, df://host:50050 (with --engine ballista;
    /// without it, a scheduler and an executor run inside wh).
    #[arg(long, global = true, env = "WH_SCHEDULER")]
    pub scheduler: Option<String>,
    /// How long one query may run on a Ballista cluster before its model
    /// fails, e.g. 20m (default: the target's `job_timeout:`, else 30m).
    #[arg(long, global = true, env = "WH_JOB_TIMEOUT")]
    pub job_timeout: Option<String>,
    /// Models to include: name, +name, name+, +name+, @name, tag:x, path:models/marts, source:x.
    #[arg(short = 's', long = "select", global = true, num_args = 1..)]
    pub select: Vec<String>,
    /// Models to leave out, same syntax as --select.
    #[arg(long, global = true, num_args = 1..)]
    pub exclude: Vec<String>,
    /// Artifacts of the run to compare with, for `state:` and `result:`
    /// selectors and `wh retry` (default: the target path, before this run
    /// overwrites it).
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// Print errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Progress as text lines (with a progress bar on a terminal) or as
    /// JSON objects, one per line, for log collectors.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How progress is written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the selected models in DAG order; audit each table before it is published.
    Build {
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Rebuild every selected model, even those whose published version is up to date.
        #[arg(long)]
        full_refresh: bool,
    },
    /// Run again the models that failed or were skipped in the last `wh build` or `wh run`.
    Retry,
    /// Run the selected snapshots only (all of them without --select), as `dbt snapshot`.
    Snapshot,
    /// Forget a person: remove every record carrying their identifiers from
    /// every model through a rebuild, and write an audit record.
    Forget {
        /// TYPE:VALUE, e.g. email:ana@example.com or phone:+34612000001;
        /// repeat for several.
        #[arg(long = "identifier", required = true, num_args = 1)]
        identifiers: Vec<String>,
        /// Why (kept in the audit record), e.g. a request reference.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Load the seeds (CSV files under the seed paths) into the warehouse, as `dbt seed`.
    Seed,
    /// Report on the project: with --compat, what wh will run of a dbt
    /// project, what it maps, ignores and does not support, and which
    /// models cannot be planned, before anything runs.
    Debug {
        /// The compatibility report (the only report for now, so required).
        #[arg(long, required = true)]
        compat: bool,
        /// Output format (table is text).
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Run the selected models and publish them, without assertions (see `wh test`).
    Run {
        /// Rebuild every selected model, even those whose published version is up to date.
        #[arg(long)]
        full_refresh: bool,
    },
    /// Run the assertions of the selected models against what is published.
    Test {
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Render every model's SQL to target/compiled/ without reading data.
    Compile,
    /// Check project metadata rules (owners, stewards, descriptions, pii, key tests).
    Check,
    /// Write a governance report (one HTML file) from the assertion history.
    Report {
        /// Where to write it.
        #[arg(long, default_value = "target/governance_report.html")]
        out: PathBuf,
        /// How many recent runs the pass rates cover.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// List the selected models.
    Ls {
        /// What to print for each model.
        #[arg(long, value_enum, default_value_t = LsOutput::Name)]
        output: LsOutput,
    },
    /// Print the first rows of a built model.
    Show {
        /// The model's name.
        model: String,
        /// How many rows.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Run ad-hoc SQL where every built model is a table by its name.
    Query {
        /// The SQL to run.
        sql: String,
        /// Print at most this many rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Table or column lineage: MODEL, MODEL.COLUMN, SOURCE.TABLE[.COLUMN].
    Lineage {
        /// What to trace.
        #[arg(value_name = "MODEL[.COLUMN]")]
        node: String,
        /// Follow consumers instead of inputs (impact analysis).
        #[arg(long, conflicts_with = "upstream")]
        downstream: bool,
        /// Follow inputs (the default).
        #[arg(long)]
        upstream: bool,
        /// How many hops to follow (all if unset).
        #[arg(long)]
        depth: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LineageFormat::Tree)]
        format: LineageFormat,
        /// Include inputs that shape rows rather than values (join keys,
        /// filters, group by, sort) for every column.
        #[arg(long)]
        indirect: bool,
    },
    /// Source checks: `wh source freshness`.
    Source {
        #[command(subcommand)]
        action: SourceAction,
    },
    /// The static docs site: generate it, or serve it on localhost.
    Docs {
        #[command(subcommand)]
        action: DocsAction,
    },
    /// Create a minimal working project in DIR.
    Init {
        /// The folder to create.
        dir: PathBuf,
    },
    /// Run a node of a Ballista cluster for `--engine ballista`: a
    /// scheduler, or an executor, with every function wh plans with.
    Cluster {
        #[command(subcommand)]
        role: ClusterRole,
    },
}

/// `wh cluster` roles.
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// The scheduler: wh submits queries to it (`--scheduler df://HOST:PORT`)
    /// and it splits them into tasks on its executors.
    Scheduler {
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Host name executors and wh reach it by (default: the bind address).
        #[arg(long)]
        external_host: Option<String>,
        /// An executor silent this long is lost and its tasks run again
        /// elsewhere, e.g. 30s.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        executor_timeout: std::time::Duration,
    },
    /// An executor: runs tasks for the scheduler; reads sources and the
    /// warehouse with its own credentials (AWS_* variables or profile).
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Tasks run at once. Ballista 55 waits forever on a stage with more
        /// tasks than the cluster has slots: keep slots x executors at least
        /// the session's partitions (wh's default: the cores of its machine).
        #[arg(long, default_value_t = 32)]
        slots: usize,
        /// Folder for shuffle files and spills (default: a temporary one).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Address its services listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Host name other executors and wh fetch results from (default: the bind host).
        #[arg(long)]
        external_host: Option<String>,
        /// Arrow Flight port (results and shuffle data).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// gRPC port (tasks from the scheduler).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// How often it tells the scheduler it is alive, e.g. 5s.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        heartbeat: std::time::Duration,
    },
}

/// `wh ls --output`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LsOutput {
    Name,
    Path,
    Json,
}

/// `wh query --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
}

/// `wh lineage --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LineageFormat {
    Tree,
    Json,
    Dot,
    Mermaid,
}

/// `wh docs` actions.
#[derive(Debug, Subcommand)]
pub enum DocsAction {
    /// Write the site (index.html and data.js) to --out.
    Generate {
        #[arg(long, default_value = "target/docs")]
        out: PathBuf,
    },
    /// Serve the generated site on 127.0.0.1.
    Serve {
        #[arg(long, default_value = "target/docs")]
        out: PathBuf,
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

/// `wh source` subcommands.
#[derive(Debug, Subcommand)]
pub enum SourceAction {
    /// How old each source's newest row is (`loaded_at_field`), against its
    /// `freshness` thresholds; writes target/sources.json. Exit 1 if any is
    /// past `error_after`.
    Freshness,
}
