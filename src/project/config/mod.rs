//! Typed shapes of the project files (`wh_project.yml`, `sources.yml`,
//! `models/**/*.yml`). Every struct rejects unknown keys so that a typo is an
//! error with a line, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

mod governance;
mod hooks;
mod model;
mod schema;
mod unit_test;

pub use governance::*;
pub use hooks::*;
pub use model::*;
pub use schema::*;
pub use unit_test::*;

/// The job timeout when neither `--job-timeout` nor the target's
/// `job_timeout:` gives one
/// (a query on a Ballista cluster that runs longer fails its model).
pub const DEFAULT_JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// `wh_project.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectFile {
    pub name: String,
    #[serde(default)]
    pub version: Option<Json>,
    #[serde(default)]
    pub config_version: Option<u32>,
    #[serde(default = "default_model_paths")]
    pub model_paths: Vec<String>,
    #[serde(default = "default_macro_paths")]
    pub macro_paths: Vec<String>,
    #[serde(default = "default_test_paths")]
    pub test_paths: Vec<String>,
    /// Folders of `{% snapshot %}` blocks.
    #[serde(default = "default_snapshot_paths")]
    pub snapshot_paths: Vec<String>,
    /// Folders of analyses: SQL compiled to `target/compiled/`, never run.
    #[serde(default = "default_analysis_paths")]
    pub analysis_paths: Vec<String>,
    /// Folders of CSV seeds.
    #[serde(default = "default_seed_paths")]
    pub seed_paths: Vec<String>,
    /// Folders of `.md` files with `{% docs %}` blocks; default: the model,
    /// seed, snapshot, macro and test paths.
    #[serde(default)]
    pub docs_paths: Option<Vec<String>>,
    #[serde(default = "default_target_path")]
    pub target_path: String,
    #[serde(default)]
    pub vars: BTreeMap<String, Json>,
    /// dbt's nested folder tree: `+key` entries are configs, other keys are
    /// sub-folders, the first level is the project name.
    #[serde(default)]
    pub models: Map<String, Json>,
    /// The same tree for seeds.
    #[serde(default)]
    pub seeds: Map<String, Json>,
    /// Name of the target used when `--target` is not given.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetFile>,
    /// Levels of the project-metadata rules `wh check` runs.
    #[serde(default)]
    pub checks: ChecksFile,
    /// Who hears about a failed or warning build.
    #[serde(default)]
    pub alerts: AlertsFile,
    /// What `wh build` does with a source past its `error_after`: `warn`
    /// (default) or `skip` the models that read it.
    #[serde(default)]
    pub on_stale_source: StalePolicy,
    /// Data classes (`pii`, ...): what removes one from a derived column,
    /// and how public models mask it when written.
    #[serde(default)]
    pub classification: BTreeMap<String, ClassPolicy>,
    /// Consent enforced when models with a tag are written.
    #[serde(default)]
    pub consent: Option<ConsentPolicy>,
    /// Where `wh forget` finds a person's identifiers.
    #[serde(default)]
    pub forget: Option<ForgetPolicy>,
    /// SQL run on the session before the first model of `wh build`/`wh run`
    /// (a failure skips every model).
    #[serde(default)]
    pub on_run_start: Option<HookList>,
    /// SQL run on the session after the last model, whatever happened.
    #[serde(default)]
    pub on_run_end: Option<HookList>,
}

fn default_model_paths() -> Vec<String> {
    vec!["models".into()]
}
fn default_macro_paths() -> Vec<String> {
    vec!["macros".into()]
}
fn default_test_paths() -> Vec<String> {
    vec!["data_tests".into()]
}
fn default_snapshot_paths() -> Vec<String> {
    vec!["snapshots".into()]
}
fn default_analysis_paths() -> Vec<String> {
    vec!["analyses".into()]
}
fn default_seed_paths() -> Vec<String> {
    vec!["seeds".into()]
}
pub(crate) fn default_target_path() -> String {
    "target".into()
}

/// One output environment (`targets: {dev: {warehouse: warehouse}}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Local folder (relative to the project) or URL of the warehouse.
    pub warehouse: String,
    #[serde(default)]
    pub threads: Option<usize>,
    /// `target.schema` in templates (default `main`, as DuckDB's).
    #[serde(default)]
    pub schema: Option<String>,
    /// How to reach S3 for `s3://` warehouses and sources. Credentials are
    /// never here: they come from the AWS environment and profile files.
    #[serde(default)]
    pub s3: S3Settings,
    /// Where the models' queries run: `local` (this process, the default)
    /// or `ballista` (a Ballista cluster).
    #[serde(default)]
    pub engine: Option<EngineName>,
    /// The Ballista scheduler, `df://host:50050`; without one, `engine:
    /// ballista` starts a scheduler and an executor in the wh process.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// How long one query may run on the cluster before its model fails,
    /// e.g. `20m` (default 30m).
    #[serde(default)]
    pub job_timeout: Option<String>,
}

/// The engines a target can run on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineName {
    Local,
    Ballista,
}

/// Connection settings for an S3 API (AWS or an S3-compatible store).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// AWS region; default `$AWS_REGION`, else `us-east-1`. Unset settings
    /// fall back to the standard variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`, the default, which
    /// S3-compatible stores need) or virtual-hosted (`bucket.endpoint/key`).
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Allow a plain-http endpoint (a local store).
    #[serde(default)]
    pub allow_http: Option<bool>,
}
