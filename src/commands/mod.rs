//! One module per subcommand, and the settings they all start from.

pub mod build;
pub mod check;
pub mod cluster;
pub mod compile;
pub mod context;
pub mod debug;
pub mod docs;
pub mod forget;
pub mod init;
pub mod lineage;
pub mod ls;
pub mod query;
pub mod report;
pub mod run;
pub mod show;
pub mod source;
pub mod test;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value as Json;

use crate::cli::{Cli, Command, SharedArgs};
use crate::compile::Compiled;
use crate::error::Error;
use crate::exec::Engine;
use crate::graph::selector::{self, Selection};
use crate::graph::Graph;
use crate::project::{yaml, Overrides, Project};

/// Everything a command needs, resolved once from flags and project files.
pub struct Settings {
    pub project: Project,
    pub select: Selection,
    pub exclude: Selection,
    pub quiet: bool,
    /// `--state`: where the previous run's artifacts are.
    pub state: Option<PathBuf>,
    /// The flags as given, for run_results `args`.
    pub args: Json,
    /// `--memory-limit` in bytes: what DataFusion's operators may hold.
    pub memory_limit: Option<usize>,
    /// `--log-format`.
    pub log_format: crate::cli::LogFormat,
}

/// dbt's name of a wh command, as `flags.WHICH` gives it.
fn dbt_command_name(command: &str) -> &str {
    match command {
        "ls" => "list",
        "source freshness" => "freshness",
        "docs" => "generate",
        other => other,
    }
}

impl Settings {
    /// Loads the project and merges the command line into its settings.
    pub fn resolve(shared: &SharedArgs, command: &str) -> Result<Settings, Error> {
        let vars: BTreeMap<String, Json> = match &shared.vars {
            Some(text) if !text.trim().is_empty() => yaml::parse_inline(text, "--vars")?,
            _ => BTreeMap::new(),
        };
        if shared.threads == Some(0) {
            return Err(Error::Usage { message: "--threads must be at least 1".into(), hint: None });
        }
        let memory_limit = match &shared.memory_limit {
            Some(text) => Some(parse_size(text).ok_or_else(|| Error::Usage {
                message: format!("--memory-limit `{text}` is not a size"),
                hint: Some("give bytes with a unit, e.g. --memory-limit 1GB, 512MB or 2GiB".into()),
            })?),
            None => None,
        };
        let overrides = Overrides {
            target: shared.target.clone(),
            vars: vars.clone(),
            threads: shared.threads,
            profiles_dir: shared.profiles_dir.clone(),
            engine: shared.engine,
            scheduler: shared.scheduler.clone(),
            job_timeout: shared.job_timeout.clone(),
            which: dbt_command_name(command).to_string(),
        };
        let root = absolute(&shared.project_dir);
        let project = Project::load(&root, &overrides)?;
        if memory_limit.is_some() && matches!(project.target.engine, crate::project::EngineChoice::Ballista { .. }) {
            return Err(Error::Usage {
                message: "--memory-limit bounds the local engine's operators; on Ballista the executors run them"
                    .into(),
                hint: Some(
                    "leave out --memory-limit with --engine ballista (executors have their own settings)".into(),
                ),
            });
        }
        let select = selector::parse(&shared.select)?;
        let exclude = selector::parse(&shared.exclude)?;
        let args = serde_json::json!({
            "which": command,
            "target": project.target.name,
            "vars": vars,
            "threads": project.target.threads,
            "memory_limit": memory_limit,
            "engine": match &project.target.engine {
                crate::project::EngineChoice::Local => "local",
                crate::project::EngineChoice::Ballista { .. } => "ballista",
            },
            "select": select.to_string(),
            "exclude": exclude.to_string(),
        });
        Ok(Settings {
            project,
            select,
            exclude,
            quiet: shared.quiet,
            state: shared.state.clone(),
            args,
            memory_limit,
            log_format: shared.log_format,
        })
    }

    /// The SQL the project's models are written in: DuckDB's for a dbt
    /// project.
    pub fn dialect(&self) -> crate::exec::duckdb::SqlDialect {
        if self.project.file_name == crate::project::dbt::DBT_PROJECT_FILE {
            crate::exec::duckdb::SqlDialect::DuckDb
        } else {
            crate::exec::duckdb::SqlDialect::DataFusion
        }
    }

    /// Reads the previous run's artifacts (`--state`, default the target
    /// path) for `state:` and `result:` selectors.
    pub fn previous(&self) -> crate::graph::selector::Previous {
        let dir = match &self.state {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => self.project.root.join(d),
            None => self.target_dir(),
        };
        crate::graph::selector::Previous::read(&self.project.root, &dir)
    }

    /// Returns the models the command line selects.
    pub fn selected(&self, compiled: &Compiled, graph: &Graph) -> Result<std::collections::BTreeSet<String>, Error> {
        // A large project's previous manifest costs as much to read as the
        // project: only `state:` and `result:` selectors need it.
        let previous = match self.select.reads_previous() || self.exclude.reads_previous() {
            true => self.previous(),
            false => selector::Previous::none(),
        };
        Ok(selector::select(compiled, graph, &self.select, &self.exclude, &previous)?)
    }

    /// Returns which test types the command line leaves (`test_type:`).
    pub fn test_types(&self) -> selector::TestTypes {
        selector::TestTypes::of(&self.select, &self.exclude)
    }

    /// Returns the `target/` folder for artifacts.
    pub fn target_dir(&self) -> PathBuf {
        self.project.root.join(&self.project.target_path)
    }

    /// Prints a progress or log line to stderr unless --quiet.
    pub fn log(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        match self.log_format {
            crate::cli::LogFormat::Text => eprintln!("{}", line.as_ref()),
            crate::cli::LogFormat::Json => {
                let text = line.as_ref().trim();
                if !text.is_empty() {
                    self.event(serde_json::json!({"event": "log", "message": text}));
                }
            }
        }
    }

    /// Writes one JSON log object (with `--log-format json`), stamped.
    pub fn event(&self, mut object: Json) {
        if self.quiet {
            return;
        }
        object["ts"] = Json::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        eprintln!("{object}");
    }

    /// A progress bar for `total` models on a terminal; `None` when
    /// standard error is not one, or with --quiet or --log-format json.
    pub fn progress_bar(&self, total: u64) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if self.quiet || self.log_format != crate::cli::LogFormat::Text || !std::io::stderr().is_terminal() {
            return None;
        }
        let style = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} done, {msg}")
            .ok()?
            .progress_chars("=> ");
        let bar = indicatif::ProgressBar::new(total).with_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Some(bar)
    }
}

fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    };
    joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Renders the project and builds its graph.
pub fn compile_project(settings: &Settings) -> Result<(Compiled, Graph), Error> {
    let compiled = crate::compile::compile(&settings.project)?;
    let graph = Graph::build(&compiled)?;
    Ok((compiled, graph))
}

/// Opens the warehouse for reading: sources, published tables, and views
/// and ephemerals planned from their SQL. Inputs that cannot be opened are
/// left out (a query that needs one then names it as unknown).
pub async fn open_warehouse(
    settings: &Settings,
    ctx: &context::Context,
    compiled: &Compiled,
    graph: &Graph,
) -> Result<Engine, Error> {
    let (engine, warehouse) = (ctx.engine(None).await?, &ctx.warehouse);
    // Tables come from their Parquet files; only views and ephemerals read
    // sources, so only their sources are worth a warning when missing.
    let read_by_views: std::collections::BTreeSet<&String> =
        compiled.models.values().filter(|m| m.output_path().is_none()).flat_map(|m| m.sources.iter()).collect();
    for (key, source) in &compiled.sources {
        if let Err(e) = engine.register_source(source).await {
            if read_by_views.contains(key) {
                settings.log(format!("warning: {e}"));
            }
        }
    }
    for name in graph.order() {
        let model = &compiled.models[name];
        let result = match model.output_path() {
            Some(rel) => {
                if !warehouse.exists(&rel).await.unwrap_or(false) {
                    continue;
                }
                crate::pipeline::register_output(&engine, warehouse, model).await
            }
            None => engine.register_view(name, &model.sql).await,
        };
        if let Err(e) = result {
            settings.log(format!("warning: model `{name}` is not available: {e}"));
        }
    }
    use crate::quality::{forecasts, history, monitor};
    let histories = [
        (history::DIR, "wh_test_results", "the assertion history"),
        (monitor::DIR, monitor::TABLE, "the metric history"),
        (forecasts::DIR, forecasts::TABLE, "the forecast history"),
    ];
    for (dir, table, what) in histories {
        let dir = format!("{dir}/");
        if warehouse.exists(&dir).await.unwrap_or(false) {
            if let Err(e) = engine.register_published(table, &warehouse.location(&dir)).await {
                settings.log(format!("warning: {what} is not readable: {e}"));
            }
        }
    }
    Ok(engine)
}

/// Runs the command line; returns the exit code, or an error for the
/// reporter.
pub fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let shared = &cli.shared;
    match cli.command {
        Command::Init { dir } => init::execute(&dir),
        // A cluster node runs on a runtime of its own.
        Command::Cluster { role } => cluster::execute(role),
        Command::Docs { action: crate::cli::DocsAction::Generate { out } } => {
            runtime.block_on(docs::generate(&Settings::resolve(shared, "docs")?, &out))
        }
        Command::Docs { action: crate::cli::DocsAction::Serve { out, port } } => {
            docs::serve(&Settings::resolve(shared, "docs")?, &out, port)
        }
        Command::Lineage { node, downstream, upstream: _, depth, format, indirect } => {
            let req = lineage::Request { target: &node, downstream, depth, format, indirect };
            runtime.block_on(lineage::execute(&Settings::resolve(shared, "lineage")?, req))
        }
        Command::Build { junit, full_refresh } => {
            let mut settings = Settings::resolve(shared, "build")?;
            settings.project.flags.full_refresh = full_refresh;
            runtime.block_on(build::execute(&settings, junit.as_deref(), full_refresh))
        }
        Command::Source { action: crate::cli::SourceAction::Freshness } => {
            runtime.block_on(source::freshness(&Settings::resolve(shared, "source freshness")?))
        }
        Command::Retry => runtime.block_on(run::retry(Settings::resolve(shared, "retry")?)),
        Command::Snapshot => {
            let mut settings = Settings::resolve(shared, "snapshot")?;
            settings.select = settings.select.and(&selector::parse(&["config.materialized:snapshot".to_string()])?);
            runtime.block_on(run::execute(&settings, "snapshot", false, None, false))
        }
        Command::Forget { identifiers, reason } => {
            runtime.block_on(forget::execute(Settings::resolve(shared, "forget")?, &identifiers, reason.as_deref()))
        }
        Command::Seed => {
            let mut settings = Settings::resolve(shared, "seed")?;
            settings.select = settings.select.and(&selector::parse(&["config.materialized:seed".to_string()])?);
            runtime.block_on(run::execute(&settings, "seed", false, None, false))
        }
        Command::Debug { compat: _, format } => {
            runtime.block_on(debug::compat(&Settings::resolve(shared, "debug")?, format))
        }
        Command::Run { full_refresh } => {
            let mut settings = Settings::resolve(shared, "run")?;
            settings.project.flags.full_refresh = full_refresh;
            runtime.block_on(run::execute(&settings, "run", false, None, full_refresh))
        }
        Command::Test { junit } => {
            runtime.block_on(test::execute(&Settings::resolve(shared, "test")?, junit.as_deref()))
        }
        Command::Compile => short_lived(Settings::resolve(shared, "compile")?, compile::execute),
        Command::Check => runtime.block_on(check::execute(&Settings::resolve(shared, "check")?)),
        Command::Report { out, runs } => {
            runtime.block_on(report::execute(&Settings::resolve(shared, "report")?, &out, runs))
        }
        Command::Ls { output } => short_lived(Settings::resolve(shared, "ls")?, |s| ls::execute(s, output)),
        Command::Show { model, limit } => {
            runtime.block_on(show::execute(&Settings::resolve(shared, "show")?, &model, limit))
        }
        Command::Query { sql, limit, format } => {
            runtime.block_on(query::execute(&Settings::resolve(shared, "query")?, &sql, limit, format))
        }
    }
}

/// Runs a command that ends the process, leaving its settings (the loaded
/// project) to the exit instead of freeing them one by one: a tenth of a
/// 100,000-model `wh ls` otherwise.
fn short_lived(settings: Settings, run: impl FnOnce(&Settings) -> Result<ExitCode, Error>) -> Result<ExitCode, Error> {
    let result = run(&settings);
    std::mem::forget(settings);
    result
}

/// Parses a size such as `1GB`, `512MB`, `1.5GiB` or `1000000` into bytes
/// (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024).
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes >= 1.0 && bytes.is_finite()).then_some(bytes as usize)
}
