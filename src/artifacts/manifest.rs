//! `target/manifest.json`: every node with config, SQL and dependencies,
//! and the parent and child maps. Written as it is serialized, node by
//! node, from the compiled project: a 100,000-model manifest is a few
//! hundred MB of JSON, never a tree of JSON values in memory. Compact
//! JSON, as dbt writes it: half the bytes of indented JSON.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use super::Invocation;
use crate::compile::{Compiled, CompiledModel};
use crate::diagnostic::Location;
use crate::lineage::{Input, Kind, ModelLineage, ProjectLineage};
use crate::project::config::{ColumnDef, ExposureDef, Materialization, ModelConfig};
use crate::quality::{Assertion, Subject};

const SCHEMA: &str = "https://schemas.getdbt.com/dbt/manifest/v12.json";

/// Writes the manifest of `compiled` to `path`, atomically.
pub fn write_manifest(
    path: &Path,
    inv: &Invocation,
    compiled: &Compiled,
    exposures: &[(ExposureDef, Location)],
    lineage: Option<&ProjectLineage>,
) -> std::io::Result<()> {
    let manifest = Manifest { inv, compiled, exposures, lineage, maps: DependencyMaps::of(compiled, exposures) };
    crate::storage::publish::write_atomic_with(path, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut w, &manifest)?;
        w.write_all(b"\n")?;
        w.flush()
    })
}

struct Manifest<'a> {
    inv: &'a Invocation,
    compiled: &'a Compiled,
    exposures: &'a [(ExposureDef, Location)],
    lineage: Option<&'a ProjectLineage>,
    maps: DependencyMaps,
}

impl Serialize for Manifest<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.compiled;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("metadata", &self.inv.metadata(SCHEMA))?;
        map.serialize_entry("nodes", &Nodes(self))?;
        let sources: Map<String, Json> = c.sources.values().map(|s| (s.unique_id.clone(), source_node(s))).collect();
        map.serialize_entry("sources", &sources)?;
        let exposures: Map<String, Json> = self
            .exposures
            .iter()
            .map(|(e, at)| {
                let id = exposure_id(&c.project_name, e);
                let node = exposure_node(&id, e, at, self.maps.parents_of(&id));
                (id, node)
            })
            .collect();
        map.serialize_entry("exposures", &exposures)?;
        map.serialize_entry("parent_map", &self.maps.parents)?;
        map.serialize_entry("child_map", &self.maps.children)?;
        map.end()
    }
}

/// The `nodes` map: models (and seeds and snapshots) by name, then tests;
/// a node id seen twice is written once.
struct Nodes<'a>(&'a Manifest<'a>);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Manifest { compiled, lineage, maps, .. } = self.0;
        let mut map = s.serialize_map(None)?;
        let mut seen: HashSet<&str> = HashSet::new();
        for m in compiled.models.values() {
            if seen.insert(&m.unique_id) {
                let node =
                    model_node(compiled, m, maps.parents_of(&m.unique_id), lineage.and_then(|l| l.models.get(&m.name)));
                map.serialize_entry(&m.unique_id, &node)?;
            }
        }
        for a in &compiled.assertions {
            if seen.insert(&a.unique_id) {
                map.serialize_entry(
                    &a.unique_id,
                    &test_node(&compiled.project_name, a, maps.parents_of(&a.unique_id)),
                )?;
            }
        }
        map.end()
    }
}

/// The manifest's `parent_map` and `child_map`: each node's parents,
/// sorted and deduplicated, and its children, sorted.
#[derive(Default)]
struct DependencyMaps {
    parents: BTreeMap<String, Vec<String>>,
    children: BTreeMap<String, Vec<String>>,
}

impl DependencyMaps {
    fn of(compiled: &Compiled, exposures: &[(ExposureDef, Location)]) -> DependencyMaps {
        let mut maps = DependencyMaps::default();
        let project = &compiled.project_name;
        for m in compiled.models.values() {
            let mut depends: Vec<String> = m.refs.iter().map(|r| compiled.models[r].unique_id.clone()).collect();
            depends.extend(m.sources.iter().map(|s| compiled.sources[s].unique_id.clone()));
            maps.link(&m.unique_id, depends);
        }
        for s in compiled.sources.values() {
            maps.link(&s.unique_id, Vec::new());
        }
        for a in &compiled.assertions {
            let mut depends = vec![attached_node(project, a)];
            depends.extend(a.depends_on.iter().map(|m| format!("model.{project}.{m}")));
            maps.link(&a.unique_id, depends);
        }
        for (e, _) in exposures {
            let depends = e
                .depends_on
                .iter()
                .filter_map(|d| crate::project::exposure_ref(d))
                .map(|m| format!("model.{project}.{m}"))
                .collect();
            maps.link(&exposure_id(project, e), depends);
        }
        for v in maps.children.values_mut() {
            v.sort();
        }
        maps
    }

    /// Records that `id` depends on `depends`; the first node of an id wins.
    fn link(&mut self, id: &str, mut depends: Vec<String>) {
        if self.parents.contains_key(id) {
            return;
        }
        depends.sort();
        depends.dedup();
        for d in &depends {
            self.children.entry(d.clone()).or_default().push(id.to_string());
        }
        self.children.entry(id.to_string()).or_default();
        self.parents.insert(id.to_string(), depends);
    }

    fn parents_of(&self, id: &str) -> &[String] {
        self.parents.get(id).map_or(&[], Vec::as_slice)
    }
}

fn exposure_id(project: &str, e: &ExposureDef) -> String {
    format!("exposure.{project}.{}", e.name)
}

fn attached_node(project: &str, a: &Assertion) -> String {
    match &a.subject {
        Subject::Model(m) => format!("model.{project}.{m}"),
        Subject::Source(k) => format!("source.{project}.{k}"),
    }
}

#[derive(Serialize)]
struct DependsOn<'a> {
    nodes: &'a [String],
    macros: [(); 0],
}

#[derive(Serialize)]
struct Checksum {
    name: &'static str,
    checksum: String,
}

/// Declared columns as a map by name, in their YAML order.
struct Columns<'a>(&'a [ColumnDef]);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|c| (&c.name, c)))
    }
}

#[derive(Serialize)]
struct ModelNode<'a> {
    unique_id: &'a str,
    resource_type: &'static str,
    name: &'a str,
    package_name: &'a str,
    original_file_path: String,
    fqn: Vec<&'a str>,
    relation_name: String,
    output_path: Option<String>,
    description: &'a str,
    config: &'a ModelConfig,
    tags: &'a [String],
    meta: &'a Map<String, Json>,
    columns: Columns<'a>,
    raw_code: &'a str,
    checksum: Checksum,
    compiled_code: &'a str,
    depends_on: DependsOn<'a>,
    data_tests: &'a [Json],
    column_lineage: Option<Json>,
}

fn model_node<'a>(
    compiled: &'a Compiled,
    m: &'a CompiledModel,
    depends: &'a [String],
    lineage: Option<&ModelLineage>,
) -> ModelNode<'a> {
    let mut fqn = vec![compiled.project_name.as_str()];
    fqn.extend(m.folder.iter().map(String::as_str));
    fqn.push(&m.name);
    ModelNode {
        unique_id: &m.unique_id,
        resource_type: match m.config.materialized {
            Materialization::Snapshot => "snapshot",
            Materialization::Seed => "seed",
            _ => "model",
        },
        name: &m.name,
        package_name: &compiled.project_name,
        original_file_path: file_path(&m.path),
        fqn,
        relation_name: crate::compile::relation(&m.name),
        output_path: m.output_path(),
        description: &m.description,
        config: &m.config,
        tags: &m.config.tags,
        meta: &m.config.meta,
        columns: Columns(&m.columns),
        raw_code: &m.raw_sql,
        checksum: Checksum { name: "sha256", checksum: crate::compile::checksum::checksum(m) },
        compiled_code: &m.sql,
        depends_on: DependsOn { nodes: depends, macros: [] },
        data_tests: &m.tests,
        column_lineage: lineage.map(column_lineage),
    }
}

/// Column lineage, one hop: each output column's inputs and how.
fn column_lineage(l: &ModelLineage) -> Json {
    let input = |(i, k): (&Input, &BTreeSet<Kind>)| json!({"relation": i.relation, "column": i.column, "kinds": k});
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

#[derive(Serialize)]
struct TestNode<'a> {
    unique_id: &'a str,
    resource_type: &'static str,
    name: &'a str,
    test_metadata: TestMetadata<'a>,
    attached_node: String,
    column_name: Option<&'a str>,
    config: TestConfig<'a>,
    original_file_path: String,
    compiled_code: &'a str,
    depends_on: DependsOn<'a>,
}

#[derive(Serialize)]
struct TestMetadata<'a> {
    name: &'a str,
    kwargs: &'a Map<String, Json>,
}

#[derive(Serialize)]
struct TestConfig<'a> {
    severity: &'static str,
    warn_if: String,
    error_if: String,
    #[serde(rename = "where")]
    filter: Option<&'a str>,
}

fn test_node<'a>(project: &str, a: &'a Assertion, depends: &'a [String]) -> TestNode<'a> {
    TestNode {
        unique_id: &a.unique_id,
        resource_type: "test",
        name: &a.name,
        test_metadata: TestMetadata { name: &a.kind, kwargs: &a.params },
        attached_node: attached_node(project, a),
        column_name: a.column.as_deref(),
        config: TestConfig {
            severity: a.severity.as_str(),
            warn_if: a.warn_if.to_string(),
            error_if: a.error_if.to_string(),
            filter: a.filter.as_deref(),
        },
        original_file_path: file_path(&a.defined_at.file),
        compiled_code: &a.failing_sql,
        depends_on: DependsOn { nodes: depends, macros: [] },
    }
}

fn exposure_node(id: &str, e: &ExposureDef, at: &Location, depends: &[String]) -> Json {
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

fn file_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
