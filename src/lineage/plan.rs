//! Column lineage of one query, read from its DataFusion logical plan (not
//! from the SQL text): for each output column, the input columns it comes
//! from and how. Direct kinds: identity, transformation, aggregation;
//! indirect: join, filter, group by, window, sort (OpenLineage's terms).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};
use serde::Serialize;

/// How an output column depends on an input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Identity,
    Transformation,
    Aggregation,
    Join,
    Filter,
    GroupBy,
    Window,
    Sort,
}

impl Kind {
    /// Tells whether the value flows into the output (direct) rather than
    /// deciding which rows or their order (indirect).
    pub fn is_direct(self) -> bool {
        matches!(self, Kind::Identity | Kind::Transformation | Kind::Aggregation)
    }

    /// Returns the lower-case name, as printed in trees.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Identity => "identity",
            Kind::Transformation => "transformation",
            Kind::Aggregation => "aggregation",
            Kind::Join => "join",
            Kind::Filter => "filter",
            Kind::GroupBy => "group by",
            Kind::Window => "window",
            Kind::Sort => "sort",
        }
    }
}

/// An input column: relation (model name, or `source.table`) and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Input {
    pub relation: String,
    pub column: String,
}

/// Input columns with the ways they reach one output column.
pub type Origins = BTreeMap<Input, BTreeSet<Kind>>;

/// Lineage of a plan's output: per column (None when it cannot be
/// resolved), and the indirect inputs that shape every row.
#[derive(Debug, Clone, Default)]
pub struct PlanLineage {
    pub columns: Vec<Option<Origins>>,
    pub indirect: Origins,
}

impl PlanLineage {
    /// Returns everything column `i` depends on: its own origins and the
    /// plan's indirect ones.
    pub fn of_column(&self, i: usize) -> Option<Origins> {
        let mut o = self.columns.get(i)?.clone()?;
        merge(&mut o, &self.indirect);
        Some(o)
    }
}

fn merge(into: &mut Origins, from: &Origins) {
    for (k, v) in from {
        into.entry(k.clone()).or_default().extend(v.iter().copied());
    }
}

/// Re-labels origins as reaching the output through `kind` (for indirect
/// uses such as a filter or join key).
fn relabel(o: &Origins, kind: Kind) -> Origins {
    o.keys().map(|k| (k.clone(), BTreeSet::from([kind]))).collect()
}

/// Composes a direct step over existing origins: the strongest direct kind
/// wins (aggregation > transformation > identity); indirect kinds stay.
fn compose(o: &Origins, step: Kind) -> Origins {
    o.iter()
        .map(|(k, kinds)| {
            let mut out: BTreeSet<Kind> = kinds.iter().copied().filter(|x| !x.is_direct()).collect();
            let strongest = kinds.iter().copied().filter(|x| x.is_direct()).max();
            if let Some(d) = strongest {
                out.insert(d.max(step));
            }
            (k.clone(), out)
        })
        .collect()
}

/// Names the relation behind a table scan (a model, or `source.table`).
type RelationOf<'a> = &'a dyn Fn(&str) -> String;

/// Computes the lineage of `plan`. `relation_of` names the relation behind
/// a table scan (a model, or `source.table`).
pub fn lineage(plan: &LogicalPlan, relation_of: RelationOf<'_>) -> PlanLineage {
    let unknown = |n: usize| PlanLineage { columns: vec![None; n], ..Default::default() };
    let constant = |n: usize| PlanLineage { columns: vec![Some(Origins::new()); n], ..Default::default() };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let rel = relation_of(&scan.table_name.to_string());
            let identity = |f: &Arc<Field>| {
                let input = Input { relation: rel.clone(), column: f.name().clone() };
                Some(Origins::from([(input, BTreeSet::from([Kind::Identity]))]))
            };
            PlanLineage {
                columns: scan.projected_schema.fields().iter().map(identity).collect(),
                indirect: Origins::new(),
            }
        }
        LogicalPlan::Projection(p) => {
            let input = lineage(&p.input, relation_of);
            let columns = p.expr.iter().map(|e| expr_origins(e, &input, p.input.as_ref(), relation_of)).collect();
            PlanLineage { columns, indirect: input.indirect }
        }
        LogicalPlan::Filter(f) => {
            let mut out = lineage(&f.input, relation_of);
            if let Some(o) = expr_origins(&f.predicate, &out, f.input.as_ref(), relation_of) {
                merge(&mut out.indirect, &relabel(&o, Kind::Filter));
            }
            out
        }
        LogicalPlan::Aggregate(a) => aggregate(a, relation_of),
        LogicalPlan::Window(w) => {
            let input = lineage(&w.input, relation_of);
            let mut columns = input.columns.clone();
            for e in &w.window_expr {
                columns.push(window_origins(e, &input, w.input.as_ref(), relation_of));
            }
            PlanLineage { columns, indirect: input.indirect }
        }
        LogicalPlan::Join(j) => join(plan, j, relation_of),
        LogicalPlan::Sort(s) => {
            let mut out = lineage(&s.input, relation_of);
            for e in &s.expr {
                if let Some(o) = expr_origins(&e.expr, &out.clone(), s.input.as_ref(), relation_of) {
                    merge(&mut out.indirect, &relabel(&o, Kind::Sort));
                }
            }
            out
        }
        LogicalPlan::Union(u) => union(u, relation_of),
        LogicalPlan::EmptyRelation(e) => constant(e.schema.fields().len()),
        LogicalPlan::Values(v) => constant(v.schema.fields().len()),
        LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Subquery(_) => {
            let input = plan.inputs()[0];
            let inner = lineage(input, relation_of);
            if input.schema().fields().len() == plan.schema().fields().len() {
                inner
            } else {
                by_name(plan, input, &inner)
            }
        }
        LogicalPlan::Unnest(_) => unnest(plan, relation_of),
        _ => unknown(plan.schema().fields().len()),
    }
}

/// Group keys keep their origins and shape every row; aggregates compose
/// theirs with `Aggregation`.
fn aggregate(a: &datafusion::logical_expr::Aggregate, relation_of: RelationOf<'_>) -> PlanLineage {
    let input = lineage(&a.input, relation_of);
    let mut indirect = input.indirect.clone();
    let mut columns = Vec::new();
    for g in &a.group_expr {
        let o = expr_origins(g, &input, a.input.as_ref(), relation_of);
        if let Some(o) = &o {
            merge(&mut indirect, &relabel(o, Kind::GroupBy));
        }
        columns.push(o);
    }
    for e in &a.aggr_expr {
        columns.push(expr_origins(e, &input, a.input.as_ref(), relation_of).map(|o| compose(&o, Kind::Aggregation)));
    }
    // Grouping sets add an internal id column.
    columns.resize(a.schema.fields().len(), None);
    PlanLineage { columns, indirect }
}

/// Both sides' columns; the join keys and filter shape every row.
fn join(plan: &LogicalPlan, j: &datafusion::logical_expr::Join, relation_of: RelationOf<'_>) -> PlanLineage {
    let left = lineage(&j.left, relation_of);
    let right = lineage(&j.right, relation_of);
    let mut indirect = left.indirect.clone();
    merge(&mut indirect, &right.indirect);
    for (l, r) in &j.on {
        for (e, side, plan) in [(l, &left, j.left.as_ref()), (r, &right, j.right.as_ref())] {
            if let Some(o) = expr_origins(e, side, plan, relation_of) {
                merge(&mut indirect, &relabel(&o, Kind::Join));
            }
        }
    }
    let mut columns = left.columns.clone();
    columns.extend(right.columns.iter().cloned());
    let mut out = PlanLineage { columns, indirect };
    if let Some(filter) = &j.filter {
        // The join filter sees both sides' columns, in the joined schema.
        if let Some(o) = expr_origins(filter, &out.clone(), plan, relation_of) {
            merge(&mut out.indirect, &relabel(&o, Kind::Join));
        }
    }
    out.columns.resize(j.schema.fields().len(), None);
    out
}

/// Each column comes from the same column of every input; unknown if it
/// is unknown in one.
fn union(u: &datafusion::logical_expr::Union, relation_of: RelationOf<'_>) -> PlanLineage {
    let parts: Vec<PlanLineage> = u.inputs.iter().map(|i| lineage(i, relation_of)).collect();
    let mut out = PlanLineage { columns: vec![Some(Origins::new()); u.schema.fields().len()], ..Default::default() };
    for p in &parts {
        merge(&mut out.indirect, &p.indirect);
        for (i, c) in out.columns.iter_mut().enumerate() {
            match (c.as_mut(), p.columns.get(i).cloned().flatten()) {
                (Some(acc), Some(o)) => merge(acc, &o),
                _ => *c = None,
            }
        }
    }
    out
}

/// An unnested list column becomes its elements: a transformation.
fn unnest(plan: &LogicalPlan, relation_of: RelationOf<'_>) -> PlanLineage {
    let input = plan.inputs()[0];
    let inner = lineage(input, relation_of);
    let mut out = by_name(plan, input, &inner);
    for (i, f) in plan.schema().fields().iter().enumerate() {
        if out.columns[i].is_none() {
            let base = f.name().trim_start_matches("__unnest_placeholder(").split([')', '.']).next().unwrap_or("");
            if let Some(idx) = input.schema().index_of_column_by_name(None, base) {
                out.columns[i] = inner.columns[idx].as_ref().map(|o| compose(o, Kind::Transformation));
            }
        }
    }
    out
}

/// Maps output columns to input columns of the same name.
fn by_name(plan: &LogicalPlan, input: &LogicalPlan, inner: &PlanLineage) -> PlanLineage {
    let columns = plan
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let idx = input.schema().fields().iter().position(|g| g.name() == f.name())?;
            inner.columns[idx].clone()
        })
        .collect();
    PlanLineage { columns, indirect: inner.indirect.clone() }
}

/// Origins of an expression over `input`; None if a column cannot be found.
fn expr_origins(
    expr: &Expr,
    input: &PlanLineage,
    input_plan: &LogicalPlan,
    relation_of: &dyn Fn(&str) -> String,
) -> Option<Origins> {
    let bare = unalias(expr);
    let mut out = Origins::new();
    for col in expr.column_refs() {
        out_merge_column(&mut out, col, input, input_plan)?;
    }
    let mut out = if matches!(bare, Expr::Column(_)) { out } else { compose(&out, Kind::Transformation) };
    // Subqueries inside the expression (scalar, IN, EXISTS).
    let mut subs = Vec::new();
    let _ = expr.apply(|e| {
        match e {
            Expr::ScalarSubquery(s) => subs.push((s.subquery.clone(), Kind::Transformation)),
            Expr::InSubquery(s) => subs.push((s.subquery.subquery.clone(), Kind::Filter)),
            Expr::Exists(s) => subs.push((s.subquery.subquery.clone(), Kind::Filter)),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    for (plan, kind) in subs {
        let sub = lineage(&plan, relation_of);
        for i in 0..sub.columns.len() {
            if let Some(o) = sub.of_column(i) {
                let o =
                    if kind == Kind::Transformation { compose(&o, Kind::Transformation) } else { relabel(&o, kind) };
                merge(&mut out, &o);
            }
        }
    }
    Some(out)
}

fn out_merge_column(out: &mut Origins, col: &Column, input: &PlanLineage, input_plan: &LogicalPlan) -> Option<()> {
    let idx = input_plan.schema().index_of_column(col).ok()?;
    merge(out, input.columns.get(idx)?.as_ref()?);
    Some(())
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// Origins of a window expression: its arguments directly, its partition
/// and order keys as `window`.
fn window_origins(
    e: &Expr,
    input: &PlanLineage,
    input_plan: &LogicalPlan,
    relation_of: &dyn Fn(&str) -> String,
) -> Option<Origins> {
    let Expr::WindowFunction(w) = unalias(e) else {
        return expr_origins(e, input, input_plan, relation_of);
    };
    let mut out = Origins::new();
    for a in &w.params.args {
        merge(&mut out, &compose(&expr_origins(a, input, input_plan, relation_of)?, Kind::Aggregation));
    }
    let keys = w.params.partition_by.iter().chain(w.params.order_by.iter().map(|s| &s.expr));
    for k in keys {
        merge(&mut out, &relabel(&expr_origins(k, input, input_plan, relation_of)?, Kind::Window));
    }
    Some(out)
}

/// The number of plan nodes on the longest path from the root to a leaf.
pub fn depth(plan: &LogicalPlan) -> usize {
    1 + plan.inputs().into_iter().map(depth).max().unwrap_or(0)
}
