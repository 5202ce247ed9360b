//! What is enforced on a model's rows and columns when it is written,
//! whatever its SQL returns: rows holding a forgotten identifier are left
//! out, a model under a consent tag keeps only consenting keys, and
//! classified columns of public models are masked. [`classify`] carries
//! data classes along the column lineage; [`enforce`] applies a policy to
//! a model's planned rows.

pub mod classify;
pub mod enforce;

use std::collections::BTreeMap;

use crate::compile::{Compiled, CompiledModel};
use crate::project::config::{ConsentPolicy, Masking};
use crate::project::Project;
use classify::Classes;

/// The relation of forgotten identifiers (type, SHA-256 hex of the value).
pub const FORGOTTEN: &str = "_wh_forgotten";

/// Where `wh forget` keeps the forgotten identifiers, in the warehouse.
pub const FORGOTTEN_FILE: &str = "_wh/forgotten.parquet";

/// One model's write policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WritePolicy {
    /// Classified columns and their masks.
    pub masks: Vec<(String, Masking)>,
    /// Keep only rows whose key consents.
    pub consent: Option<ConsentPolicy>,
    /// Identifier columns (`meta: {identifier: email}`) and their types:
    /// a row holding a forgotten identifier is left out.
    pub forget: Vec<(String, String)>,
}

impl WritePolicy {
    /// Tells whether nothing is enforced.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty() && self.consent.is_none() && self.forget.is_empty()
    }
}

/// The write policy of every model of the project on its target.
pub fn policies(project: &Project, compiled: &Compiled, classes: &Classes) -> BTreeMap<String, WritePolicy> {
    let mut out = BTreeMap::new();
    for model in compiled.models.values() {
        let policy = WritePolicy {
            masks: classify::masks(model, classes, &project.classification, &project.target.name),
            consent: project.consent.clone().filter(|c| model.config.tags.contains(&c.tag)),
            forget: identifier_columns(model),
        };
        if !policy.is_empty() {
            out.insert(model.name.clone(), policy);
        }
    }
    out
}

/// A model's identifier columns (`meta: {identifier: email}`) and their
/// identifier types.
pub fn identifier_columns(model: &CompiledModel) -> Vec<(String, String)> {
    model
        .columns
        .iter()
        .filter_map(|c| c.meta.get("identifier").and_then(|v| v.as_str()).map(|t| (c.name.clone(), t.to_string())))
        .collect()
}

/// Checks what a policy needs of the graph: a consent model upstream of
/// the models under its tag. Returns why not.
pub fn unmet(
    model: &CompiledModel,
    policy: &WritePolicy,
    ancestors: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let consent = policy.consent.as_ref()?;
    (!ancestors.contains(&consent.model)).then(|| {
        format!(
            "model `{}` is tagged `{}`, whose consent is read from `{}`, which it does not depend on",
            model.name, consent.tag, consent.model
        )
    })
}
