//! dbt's `unit_tests:` in schema YAML: a model's SQL run on given rows,
//! compared with the rows it should return.

use super::*;

/// One entry of `unit_tests:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTestDef {
    pub name: String,
    /// The model under test.
    pub model: String,
    #[serde(default)]
    pub description: String,
    /// Mock rows for the model's inputs (`ref(...)`, `source(...)`, `this`).
    #[serde(default)]
    pub given: Vec<GivenDef>,
    pub expect: FixtureDef,
    #[serde(default)]
    pub overrides: UnitOverrides,
    #[serde(default)]
    pub config: UnitTestConfig,
    /// Which versions of a versioned model it tests (wh builds no versions).
    #[serde(default)]
    pub versions: Option<Json>,
}

/// One mocked input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenDef {
    /// How the model names it: `ref('stg_orders')`, `source('raw', 'orders')`
    /// or `this`.
    pub input: String,
    #[serde(default)]
    pub format: FixtureFormat,
    #[serde(default)]
    pub rows: Option<Json>,
    #[serde(default)]
    pub fixture: Option<String>,
}

impl GivenDef {
    /// Returns its rows as a fixture.
    pub fn fixture(&self) -> FixtureDef {
        FixtureDef { format: self.format, rows: self.rows.clone(), fixture: self.fixture.clone() }
    }
}

/// Rows, inline or from a fixture file, in one of dbt's three formats.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDef {
    #[serde(default)]
    pub format: FixtureFormat,
    /// A list of mappings (`dict`), CSV text (`csv`) or a query (`sql`).
    #[serde(default)]
    pub rows: Option<Json>,
    /// A file's name (without extension) under `<test-path>/fixtures/`.
    #[serde(default)]
    pub fixture: Option<String>,
}

/// dbt's fixture formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FixtureFormat {
    #[default]
    Dict,
    Csv,
    Sql,
}

impl FixtureFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FixtureFormat::Dict => "dict",
            FixtureFormat::Csv => "csv",
            FixtureFormat::Sql => "sql",
        }
    }

    /// Returns the extension of its fixture files.
    pub fn extension(self) -> &'static str {
        match self {
            FixtureFormat::Dict | FixtureFormat::Csv => "csv",
            FixtureFormat::Sql => "sql",
        }
    }
}

/// What a unit test replaces while the model renders.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitOverrides {
    /// A macro's (or `is_incremental`'s, `invocation_id`'s) value.
    #[serde(default)]
    pub macros: Map<String, Json>,
    #[serde(default)]
    pub vars: Map<String, Json>,
    #[serde(default)]
    pub env_vars: Map<String, Json>,
}

/// A unit test's `config:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTestConfig {
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub meta: Map<String, Json>,
    #[serde(default)]
    pub enabled: Option<bool>,
}
