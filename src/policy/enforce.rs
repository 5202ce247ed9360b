//! Applies a [`WritePolicy`] to a model's planned rows: filters for
//! forgotten identifiers and consent, masks for classified columns.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{cast, lit, Expr};
use datafusion::prelude::{ident, DataFrame};

use super::{WritePolicy, FORGOTTEN};
use crate::exec::{Engine, ExecError};
use crate::project::config::{MaskMethod, Masking};

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

/// Applies a write policy to a model's rows.
pub async fn enforce(engine: &Engine, policy: &WritePolicy, mut df: DataFrame) -> Result<DataFrame, DataFusionError> {
    // Filters, not joins: the rows keep the order the SQL gave them.
    for (column, kind) in &policy.forget {
        let hashes = engine
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
        let allowed = engine
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
pub async fn register_forgotten(engine: &Engine, location: Option<&str>) -> Result<(), ExecError> {
    match location {
        Some(l) => engine.register_published(FORGOTTEN, l).await,
        None => {
            use datafusion::arrow::datatypes::{Field, Schema};
            let schema = Schema::new(vec![
                Field::new("identifier_type", DataType::Utf8, true),
                Field::new("identifier_hash", DataType::Utf8, true),
            ]);
            engine.register_empty(FORGOTTEN, std::sync::Arc::new(schema)).await
        }
    }
}
