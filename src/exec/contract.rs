//! Model contracts: when `contract: {enforced: true}`, the columns declared
//! in YAML (names and `data_type`) must be exactly the model's output, or
//! the model fails with a diff and nothing is published.

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};

use crate::compile::CompiledModel;

/// Maps a declared SQL type to the Arrow type wh publishes for it.
pub fn arrow_type(sql: &str) -> Option<DataType> {
    let t = sql.trim().to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or("").trim();
    Some(match base {
        "bigint" | "int8" | "long" | "int64" => DataType::Int64,
        "int" | "integer" | "int4" | "int32" => DataType::Int32,
        "smallint" | "int2" | "int16" => DataType::Int16,
        "tinyint" => DataType::Int8,
        "double" | "double precision" | "float8" | "float64" => DataType::Float64,
        "float" | "real" | "float4" | "float32" => DataType::Float32,
        "varchar" | "string" | "text" | "char" | "character varying" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "boolean" | "bool" => DataType::Boolean,
        "decimal" | "numeric" => {
            let args: Vec<u8> = t
                .split_once('(')
                .map(|(_, r)| r.trim_end_matches(')').split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_default();
            match args.as_slice() {
                [p, s] => DataType::Decimal128(*p, *s as i8),
                [p] => DataType::Decimal128(*p, 0),
                _ => DataType::Decimal128(18, 0),
            }
        }
        _ => return None,
    })
}

/// A model's output that differs from its enforced contract: one line per
/// column (`-` missing, `+` not declared, `~` another type, `?` unknown
/// declared type).
#[derive(Debug, thiserror::Error)]
#[error("contract of `{model}` is not met (nothing was published):\n{}", differences.join("\n"))]
pub struct ContractBreach {
    pub model: String,
    pub differences: Vec<String>,
}

/// Checks `schema` against the model's declared columns.
pub fn check(model: &CompiledModel, schema: &Schema) -> Result<(), ContractBreach> {
    if !model.config.contract_enforced {
        return Ok(());
    }
    let mut lines = Vec::new();
    for col in &model.columns {
        let declared = col.data_type.as_deref().unwrap_or("");
        let expected = arrow_type(declared);
        match schema.field_with_name(&col.name) {
            Err(_) => lines.push(format!("  - {:<24} expected {declared:<12} missing from the output", col.name)),
            Ok(f) => match &expected {
                None => lines.push(format!("  ? {:<24} declared type `{declared}` is not a known type", col.name)),
                Some(e) if e != f.data_type() => lines.push(format!(
                    "  ~ {:<24} expected {declared:<12} actual {}",
                    col.name,
                    sql_name(f.data_type())
                )),
                Some(_) => {}
            },
        }
    }
    for f in schema.fields() {
        if !model.columns.iter().any(|c| &c.name == f.name()) {
            lines.push(format!("  + {:<24} not declared          actual {}", f.name(), sql_name(f.data_type())));
        }
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Err(ContractBreach { model: model.name.clone(), differences: lines })
    }
}

/// Returns the SQL name of an Arrow type, for diffs.
pub fn sql_name(dt: &DataType) -> String {
    match dt {
        DataType::Int64 => "bigint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Utf8 => "varchar".into(),
        DataType::Date32 => "date".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => other.to_string().to_ascii_lowercase(),
    }
}
