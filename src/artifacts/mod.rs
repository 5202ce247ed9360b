//! `target/manifest.json` and `target/run_results.json`, with dbt's field
//! names where they apply, keys in sorted order so that two runs of the same
//! project differ only in timestamps and ids; and in [`junit`] the JUnit XML
//! report of a build or test run.

pub mod junit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value as Json};

use crate::compile::Compiled;
use crate::project::config::Materialization;
use crate::quality::run::Outcome;
use crate::quality::Subject;
use crate::results::NodeResult;
use crate::storage::publish::write_atomic;

/// Facts about one invocation, shared by its artifacts.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub project: String,
    pub target: String,
    pub user: String,
    pub host: String,
}

impl Invocation {
    /// Starts the invocation record of `command` on `project`, with the id
    /// and start time its templates saw.
    pub fn new(command: &str, project: &crate::project::Project) -> Invocation {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Invocation {
            id: project.invocation_id.clone(),
            command: command.into(),
            started_at: project.run_started_at,
            project: project.name.clone(),
            target: project.target.name.clone(),
            user,
            host,
        }
    }

    fn metadata(&self, schema: &str) -> Json {
        json!({
            "dbt_schema_version": schema,
            "wh_version": env!("CARGO_PKG_VERSION"),
            "generated_at": ts(&Utc::now()),
            "invocation_id": self.id,
            "invocation_started_at": ts(&self.started_at),
            "command": self.command,
            "project_name": self.project,
            "target": self.target,
            "user": self.user,
            "host": self.host,
        })
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Builds the manifest: every node with config, SQL and dependencies, and
/// parent and child maps.
pub fn manifest(
    inv: &Invocation,
    compiled: &Compiled,
    exposures: &[(crate::project::config::ExposureDef, crate::diagnostic::Location)],
    lineage: Option<&crate::lineage::ProjectLineage>,
) -> Json {
    let mut maps = DependencyMaps::default();
    let mut nodes = Map::new();
    for m in compiled.models.values() {
        let mut depends: Vec<String> = m.refs.iter().map(|r| compiled.models[r].unique_id.clone()).collect();
        depends.extend(m.sources.iter().map(|s| compiled.sources[s].unique_id.clone()));
        maps.link(&m.unique_id, &mut depends);
        let model_lineage = lineage.and_then(|l| l.models.get(&m.name));
        nodes.insert(m.unique_id.clone(), model_node(compiled, m, depends, model_lineage));
    }
    let mut sources = Map::new();
    for s in compiled.sources.values() {
        maps.link(&s.unique_id, &mut Vec::new());
        sources.insert(s.unique_id.clone(), source_node(s));
    }
    for a in &compiled.assertions {
        let project = &compiled.project_name;
        let attached = match &a.subject {
            Subject::Model(m) => format!("model.{project}.{m}"),
            Subject::Source(k) => format!("source.{project}.{k}"),
        };
        let mut depends: Vec<String> = vec![attached.clone()];
        depends.extend(a.depends_on.iter().map(|m| format!("model.{project}.{m}")));
        maps.link(&a.unique_id, &mut depends);
        nodes.insert(a.unique_id.clone(), test_node(a, attached, depends));
    }
    let mut exposure_nodes = Map::new();
    for (e, at) in exposures {
        let id = format!("exposure.{}.{}", compiled.project_name, e.name);
        let mut depends: Vec<String> = e
            .depends_on
            .iter()
            .filter_map(|d| crate::project::exposure_ref(d))
            .map(|m| format!("model.{}.{m}", compiled.project_name))
            .collect();
        maps.link(&id, &mut depends);
        exposure_nodes.insert(id.clone(), exposure_node(&id, e, at, depends));
    }
    let (parent_map, child_map) = maps.finish();
    json!({
        "metadata": inv.metadata("https://schemas.getdbt.com/dbt/manifest/v12.json"),
        "nodes": nodes,
        "sources": sources,
        "exposures": exposure_nodes,
        "parent_map": parent_map,
        "child_map": child_map,
    })
}

/// The manifest's `parent_map` and `child_map`.
#[derive(Default)]
struct DependencyMaps {
    parents: BTreeMap<String, Vec<String>>,
    children: BTreeMap<String, Vec<String>>,
}

impl DependencyMaps {
    /// Records that `id` depends on `depends` (sorted and deduplicated here).
    fn link(&mut self, id: &str, depends: &mut Vec<String>) {
        depends.sort();
        depends.dedup();
        for d in depends.iter() {
            self.children.entry(d.clone()).or_default().push(id.to_string());
        }
        self.children.entry(id.to_string()).or_default();
        self.parents.insert(id.to_string(), depends.clone());
    }

    fn finish(mut self) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
        for v in self.children.values_mut() {
            v.sort();
        }
        (self.parents, self.children)
    }
}

fn file_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn model_node(
    compiled: &Compiled,
    m: &crate::compile::CompiledModel,
    depends: Vec<String>,
    lineage: Option<&crate::lineage::ModelLineage>,
) -> Json {
    let columns: Map<String, Json> =
        m.columns.iter().map(|c| (c.name.clone(), serde_json::to_value(c).unwrap_or(Json::Null))).collect();
    json!({
        "unique_id": m.unique_id,
        "resource_type": match m.config.materialized {
            Materialization::Snapshot => "snapshot",
            Materialization::Seed => "seed",
            _ => "model",
        },
        "name": m.name,
        "package_name": compiled.project_name,
        "original_file_path": file_path(&m.path),
        "fqn": fqn(&compiled.project_name, &m.folder, &m.name),
        "relation_name": crate::compile::relation(&m.name),
        "output_path": m.output_path(),
        "description": m.description,
        "config": m.config,
        "tags": m.config.tags,
        "meta": m.config.meta,
        "columns": columns,
        "raw_code": m.raw_sql,
        "checksum": { "name": "sha256", "checksum": crate::compile::checksum::checksum(m) },
        "compiled_code": m.sql,
        "depends_on": { "nodes": depends, "macros": [] },
        "data_tests": m.tests,
        "column_lineage": lineage.map_or(Json::Null, column_lineage),
    })
}

/// Column lineage, one hop: each output column's inputs and how.
fn column_lineage(l: &crate::lineage::ModelLineage) -> Json {
    let input = |(i, k): (&crate::lineage::Input, &BTreeSet<crate::lineage::Kind>)| json!({"relation": i.relation, "column": i.column, "kinds": k});
    let cols: Map<String, Json> = l
        .columns
        .iter()
        .map(|c| {
            let inputs: Json = match &c.origins {
                None => Json::Null,
                Some(o) => o.iter().map(input).collect(),
            };
            (c.name.clone(), json!({"data_type": c.data_type, "inputs": inputs}))
        })
        .collect();
    let indirect: Vec<Json> = l.indirect.iter().map(input).collect();
    json!({"columns": cols, "indirect": indirect})
}

fn source_node(s: &crate::compile::CompiledSource) -> Json {
    let t = &s.table;
    let columns: Map<String, Json> =
        t.columns.iter().map(|c| (c.name.clone(), serde_json::to_value(c).unwrap_or(Json::Null))).collect();
    json!({
        "unique_id": s.unique_id,
        "resource_type": "source",
        "source_name": t.source,
        "name": t.name,
        "source_description": t.source_description,
        "description": t.description,
        "relation_name": crate::compile::source_relation(&t.source, &t.name),
        "location": s.location,
        "format": t.format,
        "meta": t.meta,
        "tags": t.tags,
        "columns": columns,
        "loaded_at_field": t.loaded_at_field,
        "freshness": t.freshness,
        "original_file_path": file_path(&t.defined_at.file),
    })
}

fn test_node(a: &crate::quality::Assertion, attached: String, depends: Vec<String>) -> Json {
    json!({
        "unique_id": a.unique_id,
        "resource_type": "test",
        "name": a.name,
        "test_metadata": { "name": a.kind, "kwargs": a.params },
        "attached_node": attached,
        "column_name": a.column,
        "config": {
            "severity": a.severity.as_str(),
            "warn_if": a.warn_if.to_string(),
            "error_if": a.error_if.to_string(),
            "where": a.filter,
        },
        "original_file_path": file_path(&a.defined_at.file),
        "compiled_code": a.failing_sql,
        "depends_on": { "nodes": depends, "macros": [] },
    })
}

fn exposure_node(
    id: &str,
    e: &crate::project::config::ExposureDef,
    at: &crate::diagnostic::Location,
    depends: Vec<String>,
) -> Json {
    json!({
        "unique_id": id,
        "resource_type": "exposure",
        "name": e.name,
        "label": e.label,
        "type": e.kind,
        "owner": e.owner,
        "url": e.url,
        "description": e.description,
        "maturity": e.maturity,
        "meta": e.meta,
        "tags": e.tags,
        "original_file_path": file_path(&at.file),
        "depends_on": { "nodes": depends },
    })
}

fn fqn(project: &str, folder: &[String], name: &str) -> Vec<String> {
    let mut v = vec![project.to_string()];
    v.extend(folder.iter().cloned());
    v.push(name.to_string());
    v
}

/// Builds run results: one entry per model and per assertion, sorted by id.
pub fn run_results(inv: &Invocation, results: &[NodeResult], tests: &[&Outcome], elapsed: f64, args: Json) -> Json {
    let mut entries: Vec<Json> = results
        .iter()
        .map(|r| {
            json!({
                "unique_id": r.unique_id,
                "status": r.status.as_str(),
                "timing": [{
                    "name": "execute",
                    "started_at": ts(&r.started_at),
                    "completed_at": ts(&r.completed_at),
                }],
                "execution_time": r.seconds,
                "thread_id": Json::Null,
                "adapter_response": { "rows_affected": r.rows, "bytes_written": r.bytes, "spilled_bytes": r.spilled_bytes },
                "message": r.message,
                "failures": Json::Null,
                "relation_name": crate::compile::relation(&r.name),
                "materialized": r.materialized.as_str(),
                "output_path": r.output_path,
                "location": r.failure.as_ref().and_then(|f| f.location.as_ref()).map(|l| l.to_string()),
                "hint": r.failure.as_ref().and_then(|f| f.hint.clone()),
            })
        })
        .collect();
    for o in tests {
        let a = &o.assertion;
        entries.push(json!({
            "unique_id": a.unique_id,
            "status": o.status.as_str(),
            "execution_time": o.seconds,
            "failures": o.failing,
            "message": o.message,
            "resource_type": "test",
            "test_kind": a.kind,
            "attached_node": match &a.subject {
                Subject::Model(m) => format!("model.{}.{m}", inv.project),
                Subject::Source(s) => format!("source.{}.{s}", inv.project),
            },
            "column_name": a.column,
            "severity": a.severity.as_str(),
            "threshold": a.threshold_text(),
            "rows_scanned": o.scanned,
            "sample_path": o.sample,
        }));
    }
    entries.sort_by(|a, b| a["unique_id"].as_str().cmp(&b["unique_id"].as_str()));
    json!({
        "metadata": inv.metadata("https://schemas.getdbt.com/dbt/run-results/v6.json"),
        "results": entries,
        "elapsed_time": elapsed,
        "args": args,
    })
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &Json) -> std::io::Result<()> {
    write_atomic(path, &json_bytes(value))
}

/// Returns `value` as pretty JSON with a final newline.
pub fn json_bytes(value: &Json) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}
