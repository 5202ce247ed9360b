//! Governance settings of the project file: data classes and masks,
//! consent, forgetting, stale sources, alerts, and the project checks.

use super::*;

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
    /// Where the team publishes `wh report`'s page (http or https): the
    /// summary links to it, so that an alert leads to the charts.
    #[serde(default)]
    pub report_url: Option<String>,
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
