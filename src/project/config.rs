//! Typed shapes of the project files (`wh_project.yml`, `sources.yml`,
//! `models/**/*.yml`). Every struct rejects unknown keys so that a typo is an
//! error with a line, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

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
    #[serde(default = "default_target_path")]
    pub target_path: String,
    #[serde(default)]
    pub vars: BTreeMap<String, Json>,
    /// dbt's nested folder tree: `+key` entries are configs, other keys are
    /// sub-folders, the first level is the project name.
    #[serde(default)]
    pub models: Map<String, Json>,
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
}

/// What a build does with a stale source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StalePolicy {
    #[default]
    Warn,
    Skip,
}

/// `alerts:` in `wh_project.yml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    /// When to alert: `failure` (a model or assertion failed), `warning`
    /// (an assertion warned), `success` (every run). Default: failure.
    #[serde(default, rename = "on")]
    pub on: Option<Vec<AlertOn>>,
    /// URL the JSON summary is POSTed to.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Name of an environment variable holding the URL (for URLs that carry
    /// a token and must stay out of the project).
    #[serde(default)]
    pub webhook_env: Option<String>,
    /// A shell command run with the JSON summary on its standard input.
    #[serde(default)]
    pub command: Option<String>,
}

/// What an alert is raised for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertOn {
    Failure,
    Warning,
    Success,
}

/// How much a broken metadata rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckLevel {
    Error,
    Warn,
    Off,
}

/// `checks:` in `wh_project.yml`: one level per rule.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChecksFile {
    /// Every public model names an `owner` in its meta.
    #[serde(default = "error")]
    pub public_model_owner: CheckLevel,
    /// Every public model names a `steward` in its meta.
    #[serde(default = "error")]
    pub public_model_steward: CheckLevel,
    /// Every public model has a description.
    #[serde(default = "error")]
    pub public_model_description: CheckLevel,
    /// Every column classified `pii` has a description.
    #[serde(default = "error")]
    pub pii_column_described: CheckLevel,
    /// Every mart (public model) has a `unique` or
    /// `unique_combination_of_columns` assertion on its key.
    #[serde(default = "warn")]
    pub mart_key_tested: CheckLevel,
}

fn error() -> CheckLevel {
    CheckLevel::Error
}
fn warn() -> CheckLevel {
    CheckLevel::Warn
}

impl Default for ChecksFile {
    fn default() -> Self {
        ChecksFile {
            public_model_owner: CheckLevel::Error,
            public_model_steward: CheckLevel::Error,
            public_model_description: CheckLevel::Error,
            pii_column_described: CheckLevel::Error,
            mart_key_tested: CheckLevel::Warn,
        }
    }
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
fn default_target_path() -> String {
    "target".into()
}

/// One output environment (`targets: {dev: {warehouse: warehouse}}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Local folder (relative to the project) or URL of the warehouse.
    pub warehouse: String,
    #[serde(default)]
    pub threads: Option<usize>,
    /// How to reach S3 for `s3://` warehouses and sources. Credentials are
    /// never here: they come from the AWS environment and profile files.
    #[serde(default)]
    pub s3: S3Settings,
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

/// A `models/**/*.yml` or `sources.yml` file (dbt's `version: 2` format).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub models: Vec<ModelProps>,
    #[serde(default)]
    pub sources: Vec<SourceDef>,
    #[serde(default)]
    pub exposures: Vec<ExposureDef>,
}

/// A downstream consumer of models: a BI report, a dashboard, an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposureDef {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    /// dbt's types: dashboard, notebook, analysis, ml, application.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub owner: Map<String, Json>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub maturity: Option<String>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Tags,
    /// `ref('model')` entries.
    pub depends_on: Vec<String>,
}

/// Properties of one model declared in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProps {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub config: Option<ConfigPatch>,
    /// Who may use the model: `public` (BI tools, other teams) or
    /// `internal`; dbt's `protected`/`private` are read as internal.
    #[serde(default)]
    pub access: Option<String>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub columns: Vec<ColumnDef>,
    #[serde(default)]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub data_tests: Vec<Json>,
}

/// A column declared in YAML, with its contract type and tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub meta: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_tests: Vec<Json>,
}

/// A source (`sources: - name: shop`) and its tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub loader: Option<String>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub freshness: Option<FreshnessDef>,
    /// Default format for the tables of this source.
    #[serde(default)]
    pub format: Option<FileFormat>,
    pub tables: Vec<SourceTableDef>,
}

/// One table of a source: where its files are and how to read them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTableDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Path (relative to the project), directory, glob or URL; templated.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// CSV only: whether the first line is a header (default true).
    #[serde(default)]
    pub has_header: Option<bool>,
    /// CSV only: the field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub freshness: Option<FreshnessDef>,
    #[serde(default)]
    pub columns: Vec<ColumnDef>,
    #[serde(default)]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub data_tests: Vec<Json>,
}

/// File formats a source can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Parquet,
    Csv,
}

/// How a model is materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialization {
    /// One Parquet file at a stable path.
    #[default]
    Table,
    /// Registered for downstream models and `wh query`; nothing written.
    View,
    /// Inlined into the models that reference it; never written.
    Ephemeral,
}

impl Materialization {
    /// Returns the dbt name of the materialization.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialization::Table => "table",
            Materialization::View => "view",
            Materialization::Ephemeral => "ephemeral",
        }
    }
}

/// Tags written as one string or a list, as dbt allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct Tags(pub Vec<String>);

impl Tags {
    /// Tells whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Tags {
    fn from(v: OneOrMany) -> Self {
        match v {
            OneOrMany::One(s) => Tags(vec![s]),
            OneOrMany::Many(v) => Tags(v),
        }
    }
}

/// A partial model config, from a folder in `wh_project.yml`, a `config:`
/// block in YAML or `{{ config(...) }}` in SQL; later layers win.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    #[serde(default)]
    pub materialized: Option<Materialization>,
    #[serde(default)]
    pub tags: Option<Tags>,
    #[serde(default)]
    pub meta: Option<Map<String, Json>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `contract: {enforced: true}`: declared column names and types are
    /// checked at build time.
    #[serde(default)]
    pub contract: Option<Contract>,
    /// `export: csv`: also write a CSV beside the Parquet file.
    #[serde(default)]
    pub export: Option<Export>,
    /// `format: delta`: publish a Delta Lake table instead of one Parquet file.
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// Partition columns of a Delta table.
    #[serde(default)]
    pub partition_by: Option<Vec<String>>,
}

/// How a table model is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// One Parquet file, `<folder>/<model>.parquet`.
    #[default]
    Parquet,
    /// A Delta Lake table, `<folder>/<model>/` (`_delta_log/` and data files).
    Delta,
}

/// Extra file formats a table model can be exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Export {
    Csv,
}

/// A model contract switch, as in dbt.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub enforced: bool,
}

/// The names `ConfigPatch` accepts, for hints.
pub const CONFIG_KEYS: &[&str] =
    &["materialized", "tags", "meta", "enabled", "contract", "export", "format", "partition_by"];

/// A model's resolved config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub materialized: Materialization,
    pub tags: Vec<String>,
    pub meta: Map<String, Json>,
    pub enabled: bool,
    pub contract_enforced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<Export>,
    pub format: TableFormat,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            materialized: Materialization::Table,
            tags: Vec::new(),
            meta: Map::new(),
            enabled: true,
            contract_enforced: false,
            export: None,
            format: TableFormat::Parquet,
            partition_by: Vec::new(),
        }
    }
}

impl ModelConfig {
    /// Applies a patch: scalars are replaced, tags are added, meta is merged.
    pub fn apply(&mut self, patch: &ConfigPatch) {
        if let Some(m) = patch.materialized {
            self.materialized = m;
        }
        if let Some(tags) = &patch.tags {
            for t in &tags.0 {
                if !self.tags.contains(t) {
                    self.tags.push(t.clone());
                }
            }
        }
        if let Some(meta) = &patch.meta {
            for (k, v) in meta {
                self.meta.insert(k.clone(), v.clone());
            }
        }
        if let Some(e) = patch.enabled {
            self.enabled = e;
        }
        if let Some(c) = patch.contract {
            self.contract_enforced = c.enforced;
        }
        if patch.export.is_some() {
            self.export = patch.export;
        }
        if let Some(f) = patch.format {
            self.format = f;
        }
        if let Some(p) = &patch.partition_by {
            self.partition_by = p.clone();
        }
    }
}

/// dbt's source `freshness` block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_after: Option<FreshnessAfter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_after: Option<FreshnessAfter>,
    /// SQL condition limiting the rows looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A freshness threshold: `{count: 12, period: hour}`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessAfter {
    pub count: u64,
    pub period: FreshnessPeriod,
}

/// The unit of a freshness threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreshnessPeriod {
    Minute,
    Hour,
    Day,
}

impl FreshnessAfter {
    /// Returns the threshold in seconds.
    pub fn seconds(&self) -> f64 {
        let unit = match self.period {
            FreshnessPeriod::Minute => 60,
            FreshnessPeriod::Hour => 3600,
            FreshnessPeriod::Day => 86400,
        };
        (self.count * unit) as f64
    }
}
