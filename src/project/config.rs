//! Typed shapes of the project files (`wh_project.yml`, `sources.yml`,
//! `models/**/*.yml`). Every struct rejects unknown keys so that a typo is an
//! error with a line, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

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
}

/// One data class of `classification:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPolicy {
    #[serde(default)]
    pub description: String,
    /// Column transformations (`meta: {transformation: pseudonymised}`)
    /// after which a derived column no longer carries the class.
    #[serde(default)]
    pub removed_by: Vec<String>,
    /// How columns of the class are masked when a model is written.
    #[serde(default)]
    pub masking: Option<Masking>,
}

/// A masking policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    pub method: MaskMethod,
    /// `truncate`: characters kept (default 2).
    #[serde(default)]
    pub keep: Option<usize>,
    /// Access levels whose models are masked (default: public).
    #[serde(default = "public_access")]
    pub access: Vec<String>,
    /// Targets on which it applies (default: every target).
    #[serde(default)]
    pub targets: Option<Vec<String>>,
}

fn public_access() -> Vec<String> {
    vec!["public".into()]
}

/// How a masked column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// The hex SHA-256 of the value as text: joinable, not readable.
    Hash,
    /// The first `keep` characters.
    Truncate,
    /// NULL, same type.
    Null,
    /// The column is left out.
    Drop,
}

impl MaskMethod {
    /// Returns the name used in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskMethod::Hash => "hash",
            MaskMethod::Truncate => "truncate",
            MaskMethod::Null => "null",
            MaskMethod::Drop => "drop",
        }
    }
}

/// `consent:`: models tagged `tag` keep only the rows whose `key` has
/// `column` true in `model`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPolicy {
    pub tag: String,
    pub model: String,
    pub key: String,
    pub column: String,
}

/// `forget:`: the model bridging people to their identifiers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetPolicy {
    pub model: String,
    /// Its columns: the person (profile), the identifier's type and value.
    pub profile: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
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
    /// No column of a public model carries a class (along its lineage)
    /// unmasked, unless it states `meta.unmasked_reason`.
    #[serde(default = "error")]
    pub classified_column_public: CheckLevel,
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
            classified_column_public: CheckLevel::Error,
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
    /// Seed properties: description, columns, tests, config.
    #[serde(default)]
    pub seeds: Vec<ModelProps>,
    /// Snapshot properties.
    #[serde(default)]
    pub snapshots: Vec<ModelProps>,
    /// dbt properties `wh` does not use (macro and analysis docs, groups)
    /// or cannot run (unit tests, the semantic layer), by key.
    #[serde(default)]
    pub macros: Option<Json>,
    #[serde(default)]
    pub analyses: Option<Json>,
    #[serde(default)]
    pub groups: Option<Json>,
    #[serde(default)]
    pub unit_tests: Option<Json>,
    #[serde(default)]
    pub semantic_models: Option<Json>,
    #[serde(default)]
    pub metrics: Option<Json>,
    #[serde(default)]
    pub saved_queries: Option<Json>,
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
    /// Read as a config patch when the project loads (dbt keys wh does
    /// not use are noted and left out then).
    #[serde(default)]
    pub config: Option<Map<String, Json>>,
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
    /// dbt keys `wh` accepts without using them.
    #[serde(default)]
    pub docs: Option<Json>,
    #[serde(default)]
    pub group: Option<Json>,
    #[serde(default)]
    pub constraints: Option<Json>,
    #[serde(default)]
    pub deprecation_date: Option<Json>,
    #[serde(default)]
    pub latest_version: Option<Json>,
    #[serde(default)]
    pub versions: Option<Json>,
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
    /// dbt keys `wh` accepts without using them.
    #[serde(default, skip_serializing)]
    pub quote: Option<Json>,
    #[serde(default, skip_serializing)]
    pub constraints: Option<Json>,
    #[serde(default, skip_serializing)]
    pub policy_tags: Option<Json>,
    #[serde(default, skip_serializing)]
    pub granularity: Option<Json>,
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
    /// dbt keys: where a warehouse database holds the source. `wh` reads
    /// files; `meta: {external_location: ...}` (dbt-duckdb's) is a location.
    #[serde(default)]
    pub database: Option<Json>,
    #[serde(default)]
    pub schema: Option<Json>,
    #[serde(default)]
    pub quoting: Option<Json>,
    #[serde(default)]
    pub overrides: Option<Json>,
    #[serde(default)]
    pub config: Option<Map<String, Json>>,
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
    /// dbt keys: the table's name in a warehouse database, and settings of
    /// external-table packages.
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub quoting: Option<Json>,
    #[serde(default)]
    pub external: Option<Json>,
    #[serde(default)]
    pub config: Option<Map<String, Json>>,
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
    /// A table that later builds update with new rows (`is_incremental()`),
    /// merged into the published version by `incremental_strategy`.
    Incremental,
    /// History of a slowly changing relation (SCD type 2), as dbt's
    /// snapshots: one row per version with its validity range.
    Snapshot,
    /// A CSV file of the project's seed paths, published as a table.
    Seed,
}

impl Materialization {
    /// Returns the dbt name of the materialization.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialization::Table => "table",
            Materialization::View => "view",
            Materialization::Ephemeral => "ephemeral",
            Materialization::Incremental => "incremental",
            Materialization::Snapshot => "snapshot",
            Materialization::Seed => "seed",
        }
    }

    /// Returns whether the model is published as a table in the warehouse.
    pub fn writes_table(self) -> bool {
        matches!(
            self,
            Materialization::Table | Materialization::Incremental | Materialization::Snapshot | Materialization::Seed
        )
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
    /// Incremental models and snapshots: the column(s) identifying a row.
    #[serde(default)]
    pub unique_key: Option<Tags>,
    /// Incremental models: how new rows meet the published ones.
    #[serde(default)]
    pub incremental_strategy: Option<IncrementalStrategy>,
    /// Incremental models: what a change in the model's columns does.
    #[serde(default)]
    pub on_schema_change: Option<OnSchemaChange>,
    /// Incremental models: a boolean column of the incremental SQL; a row
    /// with it true deletes the published rows of its key and is not
    /// inserted. The column is not stored.
    #[serde(default)]
    pub delete_flag: Option<String>,
    /// Snapshots: how a changed row is recognised (`timestamp` or `check`).
    #[serde(default)]
    pub strategy: Option<SnapshotStrategy>,
    /// Snapshots with the `timestamp` strategy: the column that says when a
    /// row last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Snapshots with the `check` strategy: the columns compared, or `all`.
    #[serde(default)]
    pub check_cols: Option<Tags>,
    /// Snapshots: what a row that vanished from the source does.
    #[serde(default)]
    pub hard_deletes: Option<HardDeletes>,
    /// Snapshots, dbt before 1.9: `true` is `hard_deletes: invalidate`.
    #[serde(default)]
    pub invalidate_hard_deletes: Option<bool>,
    /// Snapshots: other names for the `dbt_valid_from`, ... columns.
    #[serde(default)]
    pub snapshot_meta_column_names: Option<SnapshotColumnNames>,
    /// Seeds: SQL types of some columns (the others are inferred).
    #[serde(default)]
    pub column_types: Option<Map<String, Json>>,
    /// Seeds: the CSV field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// `public` or `internal`, as the YAML `access:` key.
    #[serde(default)]
    pub access: Option<String>,
}

/// How an incremental model's new rows are combined with its published ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum IncrementalStrategy {
    /// New rows are added; nothing is replaced.
    #[default]
    #[serde(rename = "append")]
    Append,
    /// A new row replaces the published row with its `unique_key`; the new
    /// rows must hold each key once.
    #[serde(rename = "merge")]
    Merge,
    /// Published rows whose `unique_key` appears among the new rows are
    /// deleted, then every new row is inserted.
    #[serde(rename = "delete+insert")]
    DeleteInsert,
    /// Published rows of each `partition_by` value the new rows hold are
    /// replaced by them.
    #[serde(rename = "insert_overwrite")]
    InsertOverwrite,
}

impl IncrementalStrategy {
    /// Returns dbt's name for the strategy.
    pub fn as_str(self) -> &'static str {
        match self {
            IncrementalStrategy::Append => "append",
            IncrementalStrategy::Merge => "merge",
            IncrementalStrategy::DeleteInsert => "delete+insert",
            IncrementalStrategy::InsertOverwrite => "insert_overwrite",
        }
    }
}

/// What an incremental build does when the model's columns changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSchemaChange {
    /// Keep the published columns: new columns are left out; a published
    /// column the model no longer returns fails the build.
    #[default]
    Ignore,
    /// Any difference in names or types fails the build.
    Fail,
    /// New columns are added (NULL in older rows); none are removed.
    AppendNewColumns,
    /// The table takes the model's columns: new ones added, missing ones
    /// dropped, types changed to the model's.
    SyncAllColumns,
}

/// How a snapshot recognises a changed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStrategy {
    /// `updated_at` is later than the recorded version's.
    Timestamp,
    /// One of `check_cols` differs from the recorded version.
    Check,
}

/// What a snapshot does with a row that is no longer in its source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardDeletes {
    /// Nothing: its last version stays current.
    #[default]
    Ignore,
    /// Its current version is closed (`dbt_valid_to` set to the snapshot time).
    Invalidate,
    /// Its current version is closed and a version marked deleted
    /// (`dbt_is_deleted = 'True'`) is added.
    NewRecord,
}

/// Names of a snapshot's meta columns (dbt's `snapshot_meta_column_names`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotColumnNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt_valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt_valid_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt_scd_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt_updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt_is_deleted: Option<String>,
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
pub const CONFIG_KEYS: &[&str] = &[
    "materialized",
    "tags",
    "meta",
    "enabled",
    "contract",
    "export",
    "format",
    "partition_by",
    "unique_key",
    "incremental_strategy",
    "on_schema_change",
    "delete_flag",
    "strategy",
    "updated_at",
    "check_cols",
    "hard_deletes",
    "invalidate_hard_deletes",
    "snapshot_meta_column_names",
    "column_types",
    "delimiter",
    "access",
];

/// dbt config keys that `wh` accepts and does not use: they change where
/// and how a warehouse database stores a table, not what it holds. They are
/// listed by `wh debug --compat` rather than rejected.
pub const DBT_UNUSED_KEYS: &[&str] = &[
    "alias",
    "batch_size",
    "begin",
    "bind",
    "cluster_by",
    "concurrent_batches",
    "copy_grants",
    "database",
    "dist",
    "docs",
    "event_time",
    "file_format",
    "full_refresh",
    "grants",
    "group",
    "indexes",
    "labels",
    "location_root",
    "lookback",
    "on_configuration_change",
    "options",
    "persist_docs",
    "quote_columns",
    "quoting",
    "schema",
    "sort",
    "sql_header",
    "target_database",
    "target_schema",
    "transient",
    "dbt_valid_to_current",
];

/// dbt config keys whose effect `wh` cannot reproduce: hooks run SQL
/// against a database, predicates change what a merge touches. They are
/// reported as unsupported; the models still build without them.
pub const DBT_UNSUPPORTED_KEYS: &[&str] =
    &["pre-hook", "post-hook", "pre_hook", "post_hook", "incremental_predicates", "packages", "python_version"];

/// Removes the dbt keys `wh` does not use from a config map (keys without
/// their `+`), returning them.
pub fn take_dbt_only_keys(map: &mut Map<String, Json>) -> Vec<String> {
    let keys: Vec<String> = map
        .keys()
        .filter(|k| {
            let k = k.trim_start_matches('+');
            DBT_UNUSED_KEYS.contains(&k) || DBT_UNSUPPORTED_KEYS.contains(&k)
        })
        .cloned()
        .collect();
    for k in &keys {
        map.remove(k);
    }
    keys
}

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unique_key: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental_strategy: Option<IncrementalStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_schema_change: Option<OnSchemaChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_flag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<SnapshotStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub check_cols: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_deletes: Option<HardDeletes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_meta_column_names: Option<SnapshotColumnNames>,
    /// Seeds: SQL types of some columns.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub column_types: Map<String, Json>,
    /// Seeds: the CSV field delimiter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// `access` set in a config (the YAML `access:` key wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
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
            unique_key: Vec::new(),
            incremental_strategy: None,
            on_schema_change: None,
            delete_flag: None,
            strategy: None,
            updated_at: None,
            check_cols: Vec::new(),
            hard_deletes: None,
            snapshot_meta_column_names: None,
            column_types: Map::new(),
            delimiter: None,
            access: None,
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
        if let Some(k) = &patch.unique_key {
            self.unique_key = k.0.clone();
        }
        if patch.incremental_strategy.is_some() {
            self.incremental_strategy = patch.incremental_strategy;
        }
        if patch.on_schema_change.is_some() {
            self.on_schema_change = patch.on_schema_change;
        }
        if let Some(d) = &patch.delete_flag {
            self.delete_flag = Some(d.clone());
        }
        if patch.strategy.is_some() {
            self.strategy = patch.strategy;
        }
        if let Some(u) = &patch.updated_at {
            self.updated_at = Some(u.clone());
        }
        if let Some(c) = &patch.check_cols {
            self.check_cols = c.0.clone();
        }
        if patch.hard_deletes.is_some() {
            self.hard_deletes = patch.hard_deletes;
        }
        if patch.invalidate_hard_deletes == Some(true) && patch.hard_deletes.is_none() {
            self.hard_deletes = Some(HardDeletes::Invalidate);
        }
        if let Some(n) = &patch.snapshot_meta_column_names {
            self.snapshot_meta_column_names = Some(n.clone());
        }
        if let Some(t) = &patch.column_types {
            self.column_types.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if patch.delimiter.is_some() {
            self.delimiter = patch.delimiter;
        }
        if let Some(a) = &patch.access {
            self.access = Some(a.clone());
        }
    }

    /// Returns the names of a snapshot's meta columns: valid from, valid
    /// to, scd id, updated at, is deleted.
    pub fn snapshot_columns(&self) -> [String; 5] {
        let n = self.snapshot_meta_column_names.clone().unwrap_or_default();
        [
            n.dbt_valid_from.unwrap_or_else(|| "dbt_valid_from".into()),
            n.dbt_valid_to.unwrap_or_else(|| "dbt_valid_to".into()),
            n.dbt_scd_id.unwrap_or_else(|| "dbt_scd_id".into()),
            n.dbt_updated_at.unwrap_or_else(|| "dbt_updated_at".into()),
            n.dbt_is_deleted.unwrap_or_else(|| "dbt_is_deleted".into()),
        ]
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
