//! Table and column lineage of a project, derived from the logical plans of
//! the compiled models (no data is read: sources contribute their schemas
//! from Parquet footers or CSV headers, models their planned schemas).

mod forecast;
pub mod openlineage;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::datatypes::DataType;
use serde::Serialize;

use crate::compile::Compiled;
use crate::exec::{Engine, ExecError};
use crate::graph::Graph;
pub use plan::{Input, Kind, Origins};

/// One output column of a model: its type and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnLineage {
    pub name: String,
    pub data_type: String,
    /// Inputs reaching this column (direct kinds, and window keys); None
    /// when the plan could not be resolved for this column.
    pub origins: Option<Origins>,
}

/// Lineage of one model: its columns and the inputs that shape all of its
/// rows (joins, filters, group by, sort).
#[derive(Debug, Clone, Serialize)]
pub struct ModelLineage {
    pub columns: Vec<ColumnLineage>,
    pub indirect: Origins,
}

/// Column lineage of every model that could be planned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectLineage {
    pub models: BTreeMap<String, ModelLineage>,
    /// Models that could not be planned, with the reason.
    pub unresolved: BTreeMap<String, String>,
    /// Source columns, by `source.table`.
    pub sources: BTreeMap<String, Vec<(String, String)>>,
    /// The depth of each model's own plan (its views not inlined).
    #[serde(skip)]
    pub depths: BTreeMap<String, usize>,
}

/// Plans every model in DAG order on an engine that holds only schemas, and
/// derives column lineage one hop at a time (model -> its direct inputs).
/// `engine` is a fresh session that can reach the sources' stores.
pub async fn project_lineage(compiled: &Compiled, graph: &Graph, engine: Engine) -> ProjectLineage {
    let mut out = ProjectLineage::default();
    for (key, source) in &compiled.sources {
        match engine.register_source(source).await {
            Ok(()) => {
                if let Ok(schema) = engine
                    .relation_schema(&crate::compile::source_relation(&source.table.source, &source.table.name))
                    .await
                {
                    out.sources.insert(
                        key.clone(),
                        schema.fields().iter().map(|f| (f.name().clone(), type_name(f.data_type()))).collect(),
                    );
                }
            }
            Err(e) => {
                out.unresolved.insert(format!("source {key}"), e.to_string());
            }
        }
    }
    for name in graph.order() {
        let model = &compiled.models[name];
        let planned = engine.logical_plan(&snapshot_or_model_sql(&engine, model).await).await;
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                out.unresolved.insert(name.clone(), short(&e));
                continue;
            }
        };
        let relation_of = |table: &str| table.trim_matches('"').replace("\".\"", ".");
        let lin = plan::lineage(&plan, &relation_of);
        let (schema, columns) = match &model.config.forecast {
            Some(spec) => forecast::columns(spec, plan.schema().as_arrow(), &lin),
            None => plain_columns(plan.schema().as_arrow(), &lin),
        };
        if let Err(e) = engine.register_schema_only(name, std::sync::Arc::new(schema)) {
            out.unresolved.insert(name.clone(), short(&e));
            continue;
        }
        out.depths.insert(name.clone(), plan::depth(&plan));
        out.models.insert(name.clone(), ModelLineage { columns, indirect: lin.indirect });
    }
    out
}

/// A model's columns as its plan returns them.
fn plain_columns(
    schema: &datafusion::arrow::datatypes::Schema,
    lin: &plan::PlanLineage,
) -> (datafusion::arrow::datatypes::Schema, Vec<ColumnLineage>) {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| ColumnLineage {
            name: f.name().clone(),
            data_type: type_name(f.data_type()),
            origins: lin.columns.get(i).cloned().flatten(),
        })
        .collect();
    (schema.clone(), columns)
}

/// Returns the SQL whose plan gives a model's columns: a snapshot's first
/// version (its query's columns and the validity columns), else its SQL.
async fn snapshot_or_model_sql(engine: &Engine, model: &crate::compile::CompiledModel) -> String {
    if model.config.materialized != crate::project::config::Materialization::Snapshot {
        return model.sql.clone();
    }
    let query = format!("({})", model.sql.trim().trim_end_matches(';'));
    match engine.relation_schema(&query).await {
        Ok(schema) => crate::exec::incremental::snapshot_sql(model, &schema, None, &query, "", chrono::Utc::now())
            .unwrap_or_else(|_| model.sql.clone()),
        Err(_) => model.sql.clone(),
    }
}

fn short(e: &ExecError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Returns a readable SQL-ish type name.
pub fn type_name(dt: &DataType) -> String {
    crate::exec::contract::sql_name(&crate::storage::publish::bi_type(dt))
}

/// A node of the column graph: a relation (model, or `source.table`) and a
/// column.
pub type ColumnNode = (String, String);

impl ProjectLineage {
    /// Returns the column edges: (output, input) -> kinds. With `indirect`,
    /// row-shaping inputs (join, filter, group by, sort) are included for
    /// every column.
    pub fn edges(&self, indirect: bool) -> BTreeMap<(ColumnNode, ColumnNode), BTreeSet<Kind>> {
        let mut edges: BTreeMap<(ColumnNode, ColumnNode), BTreeSet<Kind>> = BTreeMap::new();
        for (model, lin) in &self.models {
            for c in &lin.columns {
                let out = (model.clone(), c.name.clone());
                let mut all = c.origins.clone().unwrap_or_default();
                if indirect {
                    for (k, v) in &lin.indirect {
                        all.entry(k.clone()).or_default().extend(v.iter().copied());
                    }
                }
                for (input, kinds) in all {
                    edges.entry((out.clone(), (input.relation, input.column))).or_default().extend(kinds);
                }
            }
        }
        edges
    }
}
