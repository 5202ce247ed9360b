//! What is enforced on a model's rows and columns when it is written,
//! whatever its SQL returns: rows holding a forgotten identifier are left
//! out, a model under a consent tag keeps only consenting keys, and
//! classified columns of public models are masked.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{cast, lit, Expr};
use datafusion::prelude::{ident, DataFrame};

use super::Engine;
use crate::compile::{Compiled, CompiledModel};
use crate::lineage::classify::{self, Classes};
use crate::project::config::{ConsentPolicy, MaskMethod, Masking};
use crate::project::Project;

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

/// The values of a one-column query, as literals.
async fn values(df: DataFrame) -> Result<Vec<Expr>, DataFusionError> {
    let mut out = Vec::new();
    for batch in df.collect().await? {
        let column = batch.column(0);
        for i in 0..batch.num_rows() {
            out.push(lit(ScalarValue::try_from_array(column, i)?));
        }
    }
    Ok(out)
}

/// `encode(sha256(cast(x as varchar)), 'hex')`.
pub fn hash_expr(e: Expr) -> Expr {
    use datafusion::functions::expr_fn::{encode, sha256};
    encode(sha256(cast(e, DataType::Utf8)), lit("hex"))
}

impl Engine {
    /// Applies a write policy to a model's rows.
    pub async fn enforce(&self, policy: &WritePolicy, mut df: DataFrame) -> Result<DataFrame, DataFusionError> {
        // Filters, not joins: the rows keep the order the SQL gave them.
        for (column, kind) in &policy.forget {
            let hashes = self
                .ctx
                .table(FORGOTTEN)
                .await?
                .filter(ident("identifier_type").eq(lit(kind.as_str())))?
                .select(vec![ident("identifier_hash")])?;
            let forgotten = values(hashes).await?;
            if forgotten.is_empty() {
                continue;
            }
            let kept = ident(column).is_null().or(hash_expr(ident(column)).in_list(forgotten, true));
            df = df.filter(kept)?;
        }
        if let Some(c) = &policy.consent {
            let allowed = self
                .ctx
                .table(c.model.as_str())
                .await?
                .filter(ident(&c.column).eq(lit(true)))?
                .select(vec![ident(&c.key)])?
                .distinct()?;
            df = df.filter(ident(&c.key).in_list(values(allowed).await?, false))?;
        }
        if policy.masks.is_empty() {
            return Ok(df);
        }
        let masks: BTreeMap<&str, &Masking> = policy.masks.iter().map(|(c, m)| (c.as_str(), m)).collect();
        let mut exprs = Vec::new();
        for field in df.schema().fields() {
            let name = field.name().as_str();
            let column = ident(name);
            let Some(m) = masks.get(name) else {
                exprs.push(column);
                continue;
            };
            exprs.push(match m.method {
                MaskMethod::Hash => hash_expr(column).alias(name),
                MaskMethod::Truncate => {
                    let keep = m.keep.unwrap_or(2) as i64;
                    datafusion::functions::expr_fn::left(cast(column, DataType::Utf8), lit(keep)).alias(name)
                }
                MaskMethod::Null => cast(lit(ScalarValue::Null), field.data_type().clone()).alias(name),
                MaskMethod::Drop => continue,
            });
        }
        df.select(exprs)
    }

    /// Registers the forgotten identifiers from the warehouse, or none.
    pub async fn register_forgotten(&self, location: Option<&str>) -> Result<(), super::ExecError> {
        match location {
            Some(l) => self.register_published(FORGOTTEN, l).await,
            None => {
                use datafusion::arrow::datatypes::{Field, Schema};
                let schema = Schema::new(vec![
                    Field::new("identifier_type", DataType::Utf8, true),
                    Field::new("identifier_hash", DataType::Utf8, true),
                ]);
                self.register_empty(FORGOTTEN, std::sync::Arc::new(schema)).await
            }
        }
    }
}
