//! Schema YAML: model, seed and snapshot properties, columns, exposures,
//! sources and their freshness.

use super::*;

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
    /// Models' SQL run on mock rows.
    #[serde(default)]
    pub unit_tests: Vec<UnitTestDef>,
    /// dbt properties `wh` does not use (macro and analysis docs, groups)
    /// or cannot run (the semantic layer), by key.
    #[serde(default)]
    pub macros: Option<Json>,
    #[serde(default)]
    pub analyses: Option<Json>,
    #[serde(default)]
    pub groups: Option<Json>,
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
    /// dbt keys `wh` accepts without using them (boxed: absent in most
    /// files, and a large project holds every model's properties).
    #[serde(default)]
    pub docs: Option<Box<Json>>,
    #[serde(default)]
    pub group: Option<Box<Json>>,
    #[serde(default)]
    pub constraints: Option<Box<Json>>,
    #[serde(default)]
    pub deprecation_date: Option<Box<Json>>,
    #[serde(default)]
    pub latest_version: Option<Box<Json>>,
    #[serde(default)]
    pub versions: Option<Box<Json>>,
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
    pub quote: Option<Box<Json>>,
    #[serde(default, skip_serializing)]
    pub constraints: Option<Box<Json>>,
    #[serde(default, skip_serializing)]
    pub policy_tags: Option<Box<Json>>,
    #[serde(default, skip_serializing)]
    pub granularity: Option<Box<Json>>,
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
