//! Data classes that follow the data: a column classified `pii` (or any
//! class the project defines) in a source or a model passes its class to
//! every column derived from it along the column lineage, unless the
//! derived column declares a transformation that removes the class
//! (`meta: {transformation: pseudonymised}` where the class lists
//! `removed_by: [pseudonymised]`). From the classes come the masks a model
//! gets when it is written and the `wh check` rule that no class reaches a
//! public model unmasked.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::compile::{Compiled, CompiledModel};
use crate::graph::Graph;
use crate::lineage::ProjectLineage;
use crate::project::config::{ClassPolicy, Masking};

/// The columns a class came along, from the column itself back to where it
/// was declared (`model.column` or `source.table.column`).
pub type ClassPath = Vec<String>;

/// Classes of every model column: model -> column -> class -> path.
#[derive(Debug, Clone, Default)]
pub struct Classes {
    pub models: BTreeMap<String, BTreeMap<String, BTreeMap<String, ClassPath>>>,
}

/// Why a column of a public model is a problem: it carries `class` along
/// `path`, and no mask applies.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub model: String,
    pub column: String,
    pub class: String,
    pub path: ClassPath,
}

/// Reads `meta.classification`: one class or a list.
pub fn declared_classes(meta: &Map<String, Json>) -> Vec<String> {
    match meta.get("classification") {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Propagates classes through every planned model, in DAG order.
pub fn propagate(
    compiled: &Compiled,
    graph: &Graph,
    lineage: &ProjectLineage,
    policies: &BTreeMap<String, ClassPolicy>,
) -> Classes {
    let mut known: BTreeMap<(String, String), BTreeMap<String, ClassPath>> = BTreeMap::new();
    for (key, source) in &compiled.sources {
        for c in &source.table.columns {
            for class in declared_classes(&c.meta) {
                let path = vec![format!("{key}.{}", c.name)];
                known.entry((key.clone(), c.name.clone())).or_default().insert(class, path);
            }
        }
    }
    let mut out = Classes::default();
    for name in graph.order() {
        let (Some(model), Some(lin)) = (compiled.models.get(name), lineage.models.get(name)) else {
            continue;
        };
        let mut columns = BTreeMap::new();
        for col in &lin.columns {
            let here = format!("{name}.{}", col.name);
            let mut classes: BTreeMap<String, ClassPath> = BTreeMap::new();
            for (input, kinds) in col.origins.iter().flatten() {
                if !kinds.iter().any(|k| k.is_direct()) {
                    continue;
                }
                for (class, path) in known.get(&(input.relation.clone(), input.column.clone())).into_iter().flatten() {
                    classes
                        .entry(class.clone())
                        .or_insert_with(|| std::iter::once(here.clone()).chain(path.iter().cloned()).collect());
                }
            }
            let declared = model.columns.iter().find(|c| c.name == col.name);
            if let Some(t) = declared.and_then(|d| d.meta.get("transformation")).and_then(Json::as_str) {
                classes.retain(|class, _| !policies.get(class).is_some_and(|p| p.removed_by.iter().any(|r| r == t)));
            }
            for class in declared.map(|d| declared_classes(&d.meta)).unwrap_or_default() {
                classes.entry(class).or_insert_with(|| vec![here.clone()]);
            }
            known.insert((name.clone(), col.name.clone()), classes.clone());
            columns.insert(col.name.clone(), classes);
        }
        out.models.insert(name.clone(), columns);
    }
    out
}

/// Tells whether a model column states why it may stay unmasked.
fn exempt(model: &CompiledModel, column: &str) -> bool {
    model
        .columns
        .iter()
        .find(|c| c.name == column)
        .and_then(|c| c.meta.get("unmasked_reason"))
        .and_then(Json::as_str)
        .is_some_and(|r| !r.trim().is_empty())
}

/// The mask a class gets in a model of this access level on this target.
fn mask_of<'a>(policy: Option<&'a ClassPolicy>, access: &str, target: &str) -> Option<&'a Masking> {
    policy?
        .masking
        .as_ref()
        .filter(|m| m.access.iter().any(|a| a == access))
        .filter(|m| m.targets.as_ref().is_none_or(|t| t.iter().any(|x| x == target)))
}

/// The columns of `model` masked when it is written on `target`, with how.
pub fn masks(
    model: &CompiledModel,
    classes: &Classes,
    policies: &BTreeMap<String, ClassPolicy>,
    target: &str,
) -> Vec<(String, Masking)> {
    let mut out = Vec::new();
    for (column, cls) in classes.models.get(&model.name).into_iter().flatten() {
        if exempt(model, column) {
            continue;
        }
        if let Some(m) = cls.keys().find_map(|class| mask_of(policies.get(class), &model.access, target)) {
            out.push((column.clone(), m.clone()));
        }
    }
    out
}

/// Columns of public models that carry a class no mask covers and that do
/// not state an `unmasked_reason`.
pub fn public_exposures(
    compiled: &Compiled,
    classes: &Classes,
    policies: &BTreeMap<String, ClassPolicy>,
    target: &str,
) -> Vec<Exposure> {
    let mut out = Vec::new();
    for model in compiled.models.values().filter(|m| m.access == "public") {
        for (column, cls) in classes.models.get(&model.name).into_iter().flatten() {
            if exempt(model, column) {
                continue;
            }
            for (class, path) in cls {
                if mask_of(policies.get(class), &model.access, target).is_none() {
                    out.push(Exposure {
                        model: model.name.clone(),
                        column: column.clone(),
                        class: class.clone(),
                        path: path.clone(),
                    });
                }
            }
        }
    }
    out
}
