//! Incremental models and snapshots: the next version of a table computed
//! from its published version and what the model returns now. Both publish
//! like any table (staged, audited, then swapped in whole), so the previous
//! version stays until the new one is complete.
//!
//! Incremental strategies (dbt's names), with `P` the published rows and
//! `N` the rows the model returns with `is_incremental()` true:
//!
//! ```text
//! append            P + N
//! merge             P without the keys of N, + N   (N holds each unique_key once)
//! delete+insert     P without the keys of N, + N   (N may repeat a key)
//! insert_overwrite  P without the partition_by values of N, + N
//! ```
//!
//! The result is sorted by every column in order, so that the table is the
//! same file whatever order the rows arrived in.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{binary_expr, cast, ident, lit, Operator};
use datafusion::prelude::DataFrame;

use crate::compile::CompiledModel;
use crate::project::config::{HardDeletes, IncrementalStrategy, OnSchemaChange, SnapshotStrategy};

/// How a table model's new version is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From the model's SQL alone.
    Full,
    /// The published version (registered under the model's name, which
    /// `{{ this }}` renders to) merged with the incremental SQL's rows.
    Incremental,
    /// A snapshot: its recorded history (registered under its name, when
    /// `previous`) updated with what its query returns now.
    Snapshot { previous: bool },
}

/// Why an incremental build or a snapshot cannot combine its new rows
/// with the published table.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IncrementalError(pub String);

impl From<String> for IncrementalError {
    fn from(message: String) -> Self {
        IncrementalError(message)
    }
}

impl From<datafusion::error::DataFusionError> for IncrementalError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        IncrementalError(e.strip_backtrace())
    }
}

/// Returns the columns the table has after an incremental build, with
/// their types, or why the build must stop.
pub fn columns_after(
    policy: OnSchemaChange,
    published: &Schema,
    new: &Schema,
) -> Result<Vec<(String, DataType)>, IncrementalError> {
    let fields = |s: &Schema| s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>();
    let (old, now) = (fields(published), fields(new));
    let find = |list: &[(String, DataType)], name: &str| list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    let added: Vec<&(String, DataType)> = now.iter().filter(|(n, _)| find(&old, n).is_none()).collect();
    let removed: Vec<&(String, DataType)> = old.iter().filter(|(n, _)| find(&now, n).is_none()).collect();
    let retyped: Vec<String> = now
        .iter()
        .filter_map(|(n, t)| find(&old, n).filter(|o| o != t).map(|o| format!("`{n}` is {t}, was {o}")))
        .collect();
    let describe = || {
        let mut parts: Vec<String> = Vec::new();
        if !added.is_empty() {
            parts.push(format!("new {}", names(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!("gone {}", names(&removed)));
        }
        parts.extend(retyped.iter().cloned());
        parts.join("; ")
    };
    match policy {
        OnSchemaChange::Fail if !(added.is_empty() && removed.is_empty() && retyped.is_empty()) => Err(format!(
            "its columns differ from the published table's ({}) and on_schema_change is `fail`",
            describe()
        )
        .into()),
        OnSchemaChange::Ignore if !removed.is_empty() => Err(format!(
            "the published table has columns the model no longer returns ({}) and on_schema_change is `ignore`",
            names(&removed)
        )
        .into()),
        OnSchemaChange::Fail | OnSchemaChange::Ignore => Ok(old),
        OnSchemaChange::AppendNewColumns => Ok(old.into_iter().chain(added.into_iter().cloned()).collect()),
        OnSchemaChange::SyncAllColumns => Ok(now),
    }
}

fn names(columns: &[&(String, DataType)]) -> String {
    columns.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Drops the rows a model marks deleted (its `delete_flag` column true)
/// and the flag column itself; other models are returned as they are.
pub fn without_deleted(model: &CompiledModel, df: DataFrame) -> Result<DataFrame, IncrementalError> {
    let Some(flag) = &model.config.delete_flag else { return Ok(df) };
    if df.schema().as_arrow().field_with_name(flag).is_err() {
        return Ok(df);
    }
    let kept: Vec<String> =
        df.schema().as_arrow().fields().iter().map(|f| f.name().clone()).filter(|n| n != flag).collect();
    df.filter(ident(flag).is_not_true())
        .and_then(|d| d.select(kept.iter().map(ident).collect::<Vec<_>>()))
        .map_err(|e| IncrementalError(e.strip_backtrace()))
}

/// Returns whether an incremental build keeps the published columns as they
/// are (the new rows' columns, less the delete flag, change nothing).
pub fn same_columns(model: &CompiledModel, published: &Schema, new: &Schema) -> bool {
    let flag = model.config.delete_flag.as_deref();
    let kept: Vec<_> = new.fields().iter().filter(|f| Some(f.name().as_str()) != flag).cloned().collect();
    let policy = model.config.on_schema_change.unwrap_or_default();
    columns_after(policy, published, &Schema::new(kept)).is_ok_and(|cols| {
        cols.len() == published.fields().len()
            && cols.iter().zip(published.fields()).all(|((n, t), f)| n == f.name() && t == f.data_type())
    })
}

/// Merges the new rows into the published ones by the model's strategy.
/// Keys compare NULL-safe: a NULL key replaces the published NULL key.
pub async fn merge(model: &CompiledModel, published: DataFrame, new: DataFrame) -> Result<DataFrame, IncrementalError> {
    let cfg = &model.config;
    if let Some(flag) = &cfg.delete_flag {
        if new.schema().as_arrow().field_with_name(flag).is_err() {
            return Err(format!("delete_flag column `{flag}` is not a column of the new rows").into());
        }
    }
    // Keys come from every new row, rows to insert from those not deleted.
    let all_new = new;
    let new = without_deleted(model, all_new.clone())?;
    let old_schema = published.schema().as_arrow().clone();
    let new_schema = new.schema().as_arrow().clone();
    let columns = columns_after(cfg.on_schema_change.unwrap_or_default(), &old_schema, &new_schema)?;
    let strategy = cfg.incremental_strategy.unwrap_or_default();
    let (keys, what) = match strategy {
        IncrementalStrategy::Append => (&[][..], ""),
        IncrementalStrategy::Merge | IncrementalStrategy::DeleteInsert => (&cfg.unique_key[..], "unique_key"),
        IncrementalStrategy::InsertOverwrite => (&cfg.partition_by[..], "partition_by"),
    };
    for k in keys {
        for (schema, side) in [(&old_schema, "the published table"), (&new_schema, "the new rows")] {
            if schema.field_with_name(k).is_err() {
                return Err(format!("{what} column `{k}` is not a column of {side}").into());
            }
        }
    }
    let df_err = |e: datafusion::error::DataFusionError| e.strip_backtrace();
    if strategy == IncrementalStrategy::Merge {
        let repeated = all_new
            .clone()
            .aggregate(keys.iter().map(ident).collect(), vec![count(lit(1)).alias("n")])
            .and_then(|d| d.filter(ident("n").gt(lit(1))))
            .map_err(df_err)?
            .count()
            .await
            .map_err(df_err)?;
        if repeated > 0 {
            return Err(format!(
                "{repeated} unique_key value(s) appear more than once among the new rows; `merge` takes one row per key"
            )
            .into());
        }
    }
    let kept = if keys.is_empty() {
        published
    } else {
        let aliases: Vec<String> = (0..keys.len()).map(|i| format!("__wh_key_{i}")).collect();
        let new_keys = all_new
            .select(keys.iter().zip(&aliases).map(|(k, a)| ident(k).alias(a)).collect::<Vec<_>>())
            .and_then(DataFrame::distinct)
            .map_err(df_err)?;
        let on: Vec<_> = keys
            .iter()
            .zip(&aliases)
            .map(|(k, a)| binary_expr(ident(k), Operator::IsNotDistinctFrom, ident(a)))
            .collect();
        published.join_on(new_keys, JoinType::LeftAnti, on).map_err(df_err)?
    };
    let shaped = |df: DataFrame, schema: &Schema| {
        let exprs = columns
            .iter()
            .map(|(name, ty)| match schema.field_with_name(name) {
                Ok(f) if f.data_type() == ty => Ok(ident(name)),
                Ok(_) => Ok(cast(ident(name), ty.clone()).alias(name)),
                Err(_) => ScalarValue::try_from(ty).map(|null| lit(null).alias(name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        df.select(exprs)
    };
    let order = columns.iter().map(|(name, _)| ident(name).sort(true, false)).collect();
    shaped(kept, &old_schema)
        .and_then(|k| k.union(shaped(new, &new_schema)?))
        .and_then(|u| u.sort(order))
        .map_err(IncrementalError::from)
}

/// Quotes an SQL identifier.
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Returns the SQL of a snapshot's next version, dbt's SCD type 2: the
/// query's rows are `source_rel` (schema `source`); the recorded history,
/// if any, is `history_rel` (schema `history`); `now` is the snapshot time.
///
/// A row whose key has no current version, or whose current version
/// changed (`timestamp`: a later `updated_at`; `check`: a `check_cols`
/// value differs), gets a new version valid from `updated_at` (timestamp)
/// or `now` (check), and the version it replaces is closed then. Rows gone
/// from the query are kept (`hard_deletes: ignore`), closed at `now`
/// (`invalidate`), or closed with a version marked deleted (`new_record`).
pub fn snapshot_sql(
    model: &CompiledModel,
    source: &Schema,
    history: Option<&Schema>,
    source_rel: &str,
    history_rel: &str,
    now: DateTime<Utc>,
) -> Result<String, IncrementalError> {
    let snap = Snapshot::new(model, source, history, now)?;
    let cfg = &model.config;
    let vf = &snap.names[0];
    if history.is_none() {
        let sql = format!("{} from {source_rel} as s", snap.opened("s", Side::Query, &snap.change_time(), "'False'"));
        return Ok(order_by(sql, &cfg.unique_key, vf));
    }
    Ok(order_by(snap.next_version(source_rel, history_rel), &cfg.unique_key, vf))
}

/// Which relation a snapshot's data column is read from.
#[derive(Clone, Copy)]
enum Side {
    /// The snapshot's query (`s`).
    Query,
    /// The recorded history (`h`, `c`).
    History,
}

/// What a snapshot's next version is computed from.
struct Snapshot<'a> {
    cfg: &'a crate::project::config::ModelConfig,
    /// dbt_valid_from, dbt_valid_to, dbt_scd_id, dbt_updated_at,
    /// dbt_is_deleted, or the names the config gives them.
    names: [String; 5],
    strategy: SnapshotStrategy,
    check_all: bool,
    hard: HardDeletes,
    query_cols: Vec<String>,
    /// The history's data columns (not the snapshot's own).
    recorded: Vec<String>,
    recorded_deleted: bool,
    marks_deleted: bool,
    /// The recorded columns in their order, then the query's new ones.
    data: Vec<String>,
    /// The snapshot time, as SQL.
    at: String,
}

impl<'a> Snapshot<'a> {
    fn new(
        model: &'a CompiledModel,
        source: &Schema,
        history: Option<&Schema>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let cfg = &model.config;
        let names = cfg.snapshot_columns();
        let query_cols: Vec<String> = source.fields().iter().map(|f| f.name().clone()).collect();
        if let Some(c) = query_cols.iter().find(|c| names.contains(c)) {
            return Err(format!("its query returns `{c}`, a column the snapshot itself writes"));
        }
        let strategy = cfg.strategy.unwrap_or(SnapshotStrategy::Check);
        let check_all = cfg.check_cols.len() == 1 && cfg.check_cols[0].eq_ignore_ascii_case("all");
        let mut needed: Vec<(&str, &String)> = cfg.unique_key.iter().map(|k| ("unique_key", k)).collect();
        if strategy == SnapshotStrategy::Timestamp {
            needed.extend(cfg.updated_at.iter().map(|u| ("updated_at", u)));
        }
        if strategy == SnapshotStrategy::Check && !check_all {
            needed.extend(cfg.check_cols.iter().map(|c| ("check_cols", c)));
        }
        if let Some((what, c)) = needed.iter().find(|(_, c)| !query_cols.contains(c)) {
            return Err(format!("{what} column `{c}` is not a column of its query"));
        }
        let hard = cfg.hard_deletes.unwrap_or_default();
        let recorded: Vec<String> = history
            .map(|h| h.fields().iter().map(|f| f.name().clone()).filter(|n| !names.contains(n)).collect())
            .unwrap_or_default();
        let recorded_deleted = history.is_some_and(|h| h.field_with_name(&names[4]).is_ok());
        let mut data: Vec<String> = recorded.clone();
        data.extend(query_cols.iter().filter(|c| !recorded.contains(c)).cloned());
        Ok(Snapshot {
            cfg,
            names,
            strategy,
            check_all,
            hard,
            query_cols,
            recorded,
            recorded_deleted,
            marks_deleted: hard == HardDeletes::NewRecord || recorded_deleted,
            data,
            at: format!("cast('{}' as timestamp)", now.format("%Y-%m-%dT%H:%M:%S%.6f")),
        })
    }

    /// The data columns read from `alias`, NULL where `side` lacks one.
    fn from(&self, alias: &str, side: Side) -> String {
        let has = |c: &String| match side {
            Side::Query => self.query_cols.contains(c),
            Side::History => self.recorded.contains(c),
        };
        self.data
            .iter()
            .map(|c| if has(c) { format!("{alias}.{}", q(c)) } else { format!("null as {}", q(c)) })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// When a row of the query changed: its `updated_at`, or the snapshot time.
    fn change_time(&self) -> String {
        match self.strategy {
            SnapshotStrategy::Timestamp => {
                format!("cast(s.{} as timestamp)", q(self.cfg.updated_at.as_deref().unwrap_or("")))
            }
            SnapshotStrategy::Check => self.at.clone(),
        }
    }

    fn scd_id(&self, alias: &str, time: &str) -> String {
        let keys: Vec<String> =
            self.cfg.unique_key.iter().map(|k| format!("coalesce(cast({alias}.{} as varchar), '')", q(k))).collect();
        format!("md5(concat_ws('|', {}, cast({time} as varchar)))", keys.join(", "))
    }

    /// A new current version of the rows of `alias`, valid from `time`.
    fn opened(&self, alias: &str, side: Side, time: &str, deleted: &str) -> String {
        let [vf, vt, scd, upd, del] = &self.names;
        let flag = if self.marks_deleted { format!(", {deleted} as {}", q(del)) } else { String::new() };
        format!(
            "select {}, {} as {}, {time} as {}, {time} as {}, cast(null as timestamp) as {}{flag}",
            self.from(alias, side),
            self.scd_id(alias, time),
            q(scd),
            q(upd),
            q(vf),
            q(vt)
        )
    }

    /// Whether a query row `s` differs from its current version `c`.
    fn changed(&self, change_time: &str) -> String {
        let compared: Vec<&String> = if self.check_all {
            self.query_cols.iter().filter(|c| !self.cfg.unique_key.contains(c)).collect()
        } else {
            self.cfg.check_cols.iter().collect()
        };
        let changed = match self.strategy {
            SnapshotStrategy::Timestamp => format!("{change_time} > c.{}", q(&self.names[3])),
            SnapshotStrategy::Check => compared
                .iter()
                .map(|c| {
                    let old = if self.recorded.contains(c) { format!("c.{}", q(c)) } else { "null".into() };
                    format!("(s.{} is distinct from {old})", q(c))
                })
                .collect::<Vec<_>>()
                .join(" or "),
        };
        if changed.is_empty() {
            "false".into()
        } else {
            changed
        }
    }

    /// The recorded deleted flag of a history row (`h`) or current row (`c`).
    fn keep_deleted(&self, alias: &str) -> String {
        match (self.marks_deleted, self.recorded_deleted) {
            (false, _) => String::new(),
            (true, true) => format!(", {alias}.{}", q(&self.names[4])),
            (true, false) => format!(", 'False' as {}", q(&self.names[4])),
        }
    }

    /// The next version over a recorded history: closed versions as they
    /// are, current ones closed when changed or gone, new versions opened.
    fn next_version(&self, source_rel: &str, history_rel: &str) -> String {
        let [vf, vt, scd, upd, del] = &self.names;
        let key_join =
            self.cfg.unique_key.iter().map(|k| format!("c.{0} = s.{0}", q(k))).collect::<Vec<_>>().join(" and ");
        let was_deleted =
            if self.recorded_deleted { format!("coalesce(c.{}, 'False') = 'True'", q(del)) } else { "false".into() };
        let change_time = self.change_time();
        let changed = format!("({} or {was_deleted})", self.changed(&change_time));
        // A key back after a deleted marker: its versions turn at the
        // snapshot time (its updated_at may be older than the marker).
        let change_time = if was_deleted == "false" {
            change_time
        } else {
            format!("case when {was_deleted} then {} else {change_time} end", self.at)
        };
        let close_gone = match self.hard {
            HardDeletes::Ignore => "false".to_string(),
            HardDeletes::Invalidate | HardDeletes::NewRecord => format!("not {was_deleted}"),
        };
        let present = q("__wh_present");
        let at = &self.at;
        let tail = |alias: &str| format!("{alias}.{}, {alias}.{}, {alias}.{}", q(scd), q(upd), q(vf));
        let mut sql = format!(
            "with s as (select *, true as {present} from {source_rel}), \
             c as (select *, true as {present} from {history_rel} where {vt} is null) \
             select * from (\
             select {data_h}, {tail_h}, {vt}{keep_h} from {history_rel} as h where h.{vt} is not null \
             union all \
             select {data_c}, {tail_c}, case when s.{present} is not null and {changed} then {change_time} \
             when s.{present} is null and {close_gone} then {at} else null end as {vt}{keep_c} \
             from c left join s on {key_join} \
             union all \
             {new_s} from s left join c on {key_join} where c.{present} is null or {changed}",
            data_h = self.from("h", Side::History),
            tail_h = tail("h"),
            keep_h = self.keep_deleted("h"),
            keep_c = self.keep_deleted("c"),
            data_c = self.from("c", Side::History),
            tail_c = tail("c"),
            new_s = self.opened("s", Side::Query, &change_time, "'False'"),
            vt = q(vt),
        );
        if self.hard == HardDeletes::NewRecord {
            let _ = write!(
                sql,
                " union all {} from c left join s on {key_join} where s.{present} is null and not {was_deleted}",
                self.opened("c", Side::History, at, "'True'")
            );
        }
        sql.push_str(") as snapshot");
        sql
    }
}

fn order_by(sql: String, keys: &[String], valid_from: &str) -> String {
    let mut cols: Vec<String> = keys.iter().map(|k| q(k)).collect();
    cols.push(q(valid_from));
    format!("{sql} order by {}", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>())
    }

    #[test]
    fn schema_change_policies() {
        let old = schema(&[("id", DataType::Int64), ("a", DataType::Utf8), ("b", DataType::Float64)]);
        let new = schema(&[("id", DataType::Int64), ("a", DataType::Utf8), ("c", DataType::Int64)]);
        let names = |cols: Vec<(String, DataType)>| cols.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let err = columns_after(OnSchemaChange::Fail, &old, &new).unwrap_err().0;
        assert!(err.contains("new `c`") && err.contains("gone `b`"), "{err}");
        let err = columns_after(OnSchemaChange::Ignore, &old, &new).unwrap_err().0;
        assert!(err.contains("no longer returns (`b`)"), "{err}");
        assert_eq!(names(columns_after(OnSchemaChange::AppendNewColumns, &old, &new).unwrap()), ["id", "a", "b", "c"]);
        assert_eq!(names(columns_after(OnSchemaChange::SyncAllColumns, &old, &new).unwrap()), ["id", "a", "c"]);
        // Same columns: every policy keeps them.
        assert_eq!(names(columns_after(OnSchemaChange::Fail, &old, &old).unwrap()), ["id", "a", "b"]);
        let retyped = schema(&[("id", DataType::Int64), ("a", DataType::Int64), ("b", DataType::Float64)]);
        assert!(columns_after(OnSchemaChange::Fail, &old, &retyped).unwrap_err().0.contains("`a` is Int64, was Utf8"));
    }
}
