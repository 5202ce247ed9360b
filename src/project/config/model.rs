//! A model's config: materialization, incremental and snapshot settings,
//! table format, contract, the keys `config()` and YAML accept, and the
//! resolved `ModelConfig`.

use super::*;

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
    /// A forecast model: the SQL gives the series, the table the forecast.
    #[serde(default)]
    pub forecast: Option<ForecastSpec>,
    /// SQL run on the session before the model is built.
    #[serde(default, alias = "pre-hook")]
    pub pre_hook: Option<HookList>,
    /// SQL run on the session once the model is built, before its checks
    /// and its publishing; a failure fails the model.
    #[serde(default, alias = "post-hook")]
    pub post_hook: Option<HookList>,
}

/// `forecast:` in a table model's config: the model's SQL returns the
/// history, aggregated per bucket and dimension value as `metric`; the
/// published table holds the next `horizon` buckets' point forecast and
/// bounds at `level` (see docs/src/monitoring.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastSpec {
    /// An aggregate over the SQL's rows: `sum(revenue)`, `count(*)`.
    pub metric: String,
    pub timestamp_column: String,
    #[serde(default)]
    pub time_bucket: crate::series::Bucket,
    /// One series per value of these columns.
    #[serde(default)]
    pub dimensions: Tags,
    /// Buckets forecast after the last complete one.
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// The bounds' coverage, between 0 and 1.
    #[serde(default = "default_level")]
    pub level: f64,
    #[serde(default)]
    pub method: crate::series::Forecaster,
    /// Buckets per season (7 for daily buckets).
    #[serde(default)]
    pub seasonality: Option<usize>,
    /// The latest buckets trained on (all when unset).
    #[serde(default)]
    pub training_period: Option<usize>,
    /// The `as_of_date` var, set when compiled: buckets from that day on
    /// are not complete (part of the config, so that a new day rebuilds).
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

fn default_horizon() -> usize {
    28
}

fn default_level() -> f64 {
    0.9
}

impl ForecastSpec {
    /// Buckets per season.
    pub fn season(&self) -> usize {
        self.seasonality.unwrap_or(self.time_bucket.default_season())
    }

    /// What is wrong with the values, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(self.level > 0.0 && self.level < 1.0) {
            return Some(format!("forecast `level` is a coverage between 0 and 1 (0.9 for 90%), not {}", self.level));
        }
        if self.horizon == 0 || self.horizon > 10_000 {
            return Some(format!("forecast `horizon` is 1 to 10000 buckets, not {}", self.horizon));
        }
        if !(2..=1000).contains(&self.season()) {
            return Some("forecast `seasonality` is 2 to 1000 buckets".into());
        }
        None
    }
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
    "forecast",
    "pre_hook",
    "post_hook",
    "pre-hook",
    "post-hook",
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

/// dbt config keys whose effect `wh` cannot reproduce: predicates change
/// what a merge touches, packages and versions are Python models'. They
/// are reported as unsupported; the models still build without them.
pub const DBT_UNSUPPORTED_KEYS: &[&str] = &["incremental_predicates", "packages", "python_version"];

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,
    /// Hooks of every level, the project's first (dbt adds them up), as
    /// written; dbt's manifest names them `pre-hook` and `post-hook`.
    #[serde(rename = "pre-hook", skip_serializing_if = "Vec::is_empty")]
    pub pre_hook: Vec<Hook>,
    #[serde(rename = "post-hook", skip_serializing_if = "Vec::is_empty")]
    pub post_hook: Vec<Hook>,
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
            forecast: None,
            pre_hook: Vec::new(),
            post_hook: Vec::new(),
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
        if let Some(f) = &patch.forecast {
            self.forecast = Some(f.clone());
        }
        if let Some(h) = &patch.pre_hook {
            self.pre_hook.extend(h.0.iter().cloned());
        }
        if let Some(h) = &patch.post_hook {
            self.post_hook.extend(h.0.iter().cloned());
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
