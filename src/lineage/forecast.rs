//! Column lineage of a forecast model: its table's columns are not its
//! SQL's. The bucket and `trained_through` come from the timestamp column
//! (bucketed), each dimension from its column, and `forecast`, `lower` and
//! `upper` from the columns the metric aggregates.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::Schema;

use super::plan::PlanLineage;
use super::{type_name, ColumnLineage, Kind, Origins};
use crate::project::config::ForecastSpec;

/// The forecast table's schema and the lineage of each of its columns,
/// from the lineage of the SQL that gives its history.
pub(super) fn columns(spec: &ForecastSpec, input: &Schema, lin: &PlanLineage) -> (Schema, Vec<ColumnLineage>) {
    let schema = crate::exec::forecast_schema(spec);
    let of = |name: &str| -> Origins {
        let i = input.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name));
        i.and_then(|i| lin.columns.get(i).cloned().flatten()).unwrap_or_default()
    };
    let mut metric = Origins::new();
    for name in identifiers(&spec.metric) {
        metric.extend(of(&name));
    }
    let as_kind = |origins: Origins, kind: Kind| -> Origins {
        origins.into_keys().map(|input| (input, BTreeSet::from([kind]))).collect()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().as_str();
            let origins = match name {
                "forecast" | "lower" | "upper" => as_kind(metric.clone(), Kind::Aggregation),
                "trained_through" => as_kind(of(&spec.timestamp_column), Kind::Transformation),
                "step" | "level" | "method" => Origins::new(),
                _ if name == spec.timestamp_column => as_kind(of(name), Kind::Transformation),
                _ => of(name),
            };
            ColumnLineage { name: name.to_string(), data_type: type_name(f.data_type()), origins: Some(origins) }
        })
        .collect();
    (schema, columns)
}

/// The words of an expression that could name columns: `sum(revenue)`
/// gives `sum` and `revenue` (a function name matches no column).
fn identifiers(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::Input;
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn the_forecast_comes_from_the_aggregated_column_and_the_day_from_the_time_column() {
        let spec: ForecastSpec =
            serde_yaml::from_str("{metric: sum(revenue), timestamp_column: d, dimensions: [c]}").unwrap();
        let input = Schema::new(["d", "c", "revenue"].map(|n| Field::new(n, DataType::Utf8, true)).to_vec());
        let from = |col: &str| -> Origins {
            let input = Input { relation: "daily".into(), column: col.into() };
            [(input, BTreeSet::from([Kind::Identity]))].into_iter().collect()
        };
        let lin = PlanLineage {
            columns: vec![Some(from("d")), Some(from("c")), Some(from("revenue"))],
            ..Default::default()
        };
        let (schema, cols) = columns(&spec, &input, &lin);
        assert_eq!(schema.fields().len(), cols.len());
        let get = |n: &str| cols.iter().find(|c| c.name == n).unwrap().origins.clone().unwrap();
        assert_eq!(get("forecast").keys().map(|i| i.column.as_str()).collect::<Vec<_>>(), ["revenue"]);
        assert_eq!(get("forecast").values().next().unwrap(), &BTreeSet::from([Kind::Aggregation]));
        assert_eq!(get("c"), from("c"));
        assert_eq!(get("d").values().next().unwrap(), &BTreeSet::from([Kind::Transformation]));
        assert!(get("step").is_empty());
    }
}
