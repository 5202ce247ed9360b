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
use crate::compile::macros::MacroDef;
use crate::compile::{Compiled, CompiledModel};
use crate::diagnostic::Location;
use crate::lineage::{Input, Kind, ModelLineage, ProjectLineage};
use crate::project::config::{ColumnDef, ExposureDef, FixtureFormat, Materialization, ModelConfig};
use crate::quality::{Assertion, Subject};

const SCHEMA: &str = "https://schemas.getdbt.com/dbt/manifest/v12.json";

/// The manifest's maps of things wh does not declare: docs blocks,
/// groups, metrics, semantic models, saved queries, selectors, disabled
/// nodes.
const EMPTY: [&str; 8] =
    ["docs", "groups", "group_map", "metrics", "saved_queries", "selectors", "semantic_models", "disabled"];

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
        let mut map = s.serialize_map(Some(8 + EMPTY.len()))?;
        map.serialize_entry("metadata", &self.inv.metadata(SCHEMA))?;
        map.serialize_entry("nodes", &Nodes(self))?;
        let sources: Map<String, Json> =
            c.sources.values().map(|s| (s.unique_id.clone(), source_node(&c.project_name, s))).collect();
        map.serialize_entry("sources", &sources)?;
        let exposures: Map<String, Json> = self
            .exposures
            .iter()
            .map(|(e, at)| {
                let id = exposure_id(&c.project_name, e);
                let node = exposure_node(&c.project_name, &id, e, at, self.maps.parents_of(&id));
                (id, node)
            })
            .collect();
        map.serialize_entry("exposures", &exposures)?;
        let macros: Map<String, Json> =
            c.macros.iter().map(|d| (macro_id(&c.project_name, &d.name), macro_node(&c.project_name, d))).collect();
        map.serialize_entry("macros", &macros)?;
        let units: Map<String, Json> =
            c.unit_tests.iter().map(|t| (t.unique_id.clone(), unit_test_node(c, t))).collect();
        map.serialize_entry("unit_tests", &units)?;
        map.serialize_entry("parent_map", &self.maps.parents)?;
        map.serialize_entry("child_map", &self.maps.children)?;
        // What dbt's schema requires and wh has none of (yet): empty.
        for key in EMPTY {
            map.serialize_entry(key, &Map::new())?;
        }
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
                map.serialize_entry(&a.unique_id, &test_node(compiled, a, maps.parents_of(&a.unique_id)))?;
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
        for t in &compiled.unit_tests {
            maps.link(&t.unique_id, vec![format!("model.{project}.{}", t.model)]);
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

/// `nodes` is left out for a seed, which dbt's schema gives only macros.
#[derive(Serialize)]
struct DependsOn<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<&'a [String]>,
    macros: Vec<String>,
}

fn macro_id(project: &str, name: &str) -> String {
    format!("macro.{project}.{name}")
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

/// A model, seed or snapshot as dbt's `manifest/v12` has it (which allows
/// no keys of its own); wh's own facts are in `config.wh`.
#[derive(Serialize)]
struct ModelNode<'a> {
    unique_id: &'a str,
    resource_type: &'static str,
    name: &'a str,
    alias: &'a str,
    schema: &'a str,
    package_name: &'a str,
    path: String,
    original_file_path: String,
    fqn: Vec<&'a str>,
    relation_name: String,
    description: &'a str,
    config: NodeConfig<'a>,
    tags: &'a [String],
    meta: &'a Map<String, Json>,
    columns: Columns<'a>,
    raw_code: &'a str,
    checksum: Checksum,
    /// None for a seed (dbt's seeds are not compiled and have no SQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    compiled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compiled_code: Option<&'a str>,
    depends_on: DependsOn<'a>,
}

/// A model's resolved config and, under `wh`, what dbt's schema has no
/// key for: the table's file in the warehouse and its column lineage.
#[derive(Serialize)]
struct NodeConfig<'a> {
    #[serde(flatten)]
    config: &'a ModelConfig,
    wh: WhFacts,
}

#[derive(Serialize)]
struct WhFacts {
    output_path: Option<String>,
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
    let seed = m.config.materialized == Materialization::Seed;
    ModelNode {
        unique_id: &m.unique_id,
        resource_type: match m.config.materialized {
            Materialization::Snapshot => "snapshot",
            Materialization::Seed => "seed",
            _ => "model",
        },
        name: &m.name,
        alias: &m.name,
        schema: &compiled.schema,
        package_name: &compiled.project_name,
        path: in_its_folder(&m.path),
        original_file_path: file_path(&m.path),
        fqn,
        relation_name: crate::compile::relation(&m.name),
        description: &m.description,
        config: NodeConfig {
            config: &m.config,
            wh: WhFacts { output_path: m.output_path(), column_lineage: lineage.map(column_lineage) },
        },
        tags: &m.config.tags,
        meta: &m.config.meta,
        columns: Columns(&m.columns),
        raw_code: &m.raw_sql,
        checksum: Checksum { name: "sha256", checksum: crate::compile::checksum::checksum(m) },
        compiled: (!seed).then_some(true),
        compiled_code: (!seed).then_some(m.sql.as_str()),
        depends_on: DependsOn {
            nodes: (!seed).then_some(depends),
            macros: m.macros.iter().map(|n| macro_id(&compiled.project_name, n)).collect(),
        },
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

/// A source table; where it is read from is dbt's `external` (location
/// and file format), as dbt-external-tables declares it.
fn source_node(project: &str, s: &crate::compile::CompiledSource) -> Json {
    let t = &s.table;
    let columns: Map<String, Json> =
        t.columns.iter().map(|c| (c.name.clone(), serde_json::to_value(c).unwrap_or(Json::Null))).collect();
    let file = file_path(&t.defined_at.file);
    json!({
        "unique_id": s.unique_id,
        "resource_type": "source",
        "package_name": project,
        "fqn": [project, t.source, t.name],
        "source_name": t.source,
        "name": t.name,
        "schema": t.source,
        "identifier": t.name,
        "loader": "",
        "source_description": t.source_description,
        "description": t.description,
        "relation_name": crate::compile::source_relation(&t.source, &t.name),
        "external": { "location": s.location, "file_format": t.format },
        "meta": t.meta,
        "tags": t.tags,
        "columns": columns,
        "loaded_at_field": t.loaded_at_field,
        "freshness": t.freshness,
        "path": file,
        "original_file_path": file,
    })
}

#[derive(Serialize)]
struct TestNode<'a> {
    unique_id: &'a str,
    resource_type: &'static str,
    name: &'a str,
    alias: &'a str,
    schema: &'a str,
    package_name: &'a str,
    path: String,
    fqn: [&'a str; 2],
    checksum: Checksum,
    test_metadata: TestMetadata<'a>,
    attached_node: String,
    column_name: Option<&'a str>,
    config: TestConfig<'a>,
    original_file_path: String,
    compiled: bool,
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

fn test_node<'a>(compiled: &'a Compiled, a: &'a Assertion, depends: &'a [String]) -> TestNode<'a> {
    let project = compiled.project_name.as_str();
    TestNode {
        unique_id: &a.unique_id,
        resource_type: "test",
        name: &a.name,
        alias: &a.name,
        schema: &compiled.schema,
        package_name: project,
        path: format!("{}.sql", a.name),
        fqn: [project, &a.name],
        // dbt's checksum of a generic test: none (its SQL is the macro's).
        checksum: Checksum { name: "none", checksum: String::new() },
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
        compiled: true,
        compiled_code: &a.failing_sql,
        depends_on: DependsOn { nodes: Some(depends), macros: test_macro(compiled, &a.kind).into_iter().collect() },
    }
}

/// A unit test as dbt's manifest declares it: its inputs and expected rows
/// as written.
fn unit_test_node(c: &Compiled, t: &crate::compile::unit_tests::UnitTest) -> Json {
    let d = &t.declared;
    let fixture = |format: FixtureFormat, rows: &Option<Json>, fixture: &Option<String>| json!({"rows": rows, "format": format.as_str(), "fixture": fixture});
    let given: Vec<Json> = d
        .given
        .iter()
        .map(|g| {
            let mut v = fixture(g.format, &g.rows, &g.fixture);
            v["input"] = json!(g.input);
            v
        })
        .collect();
    json!({
        "model": t.model,
        "given": given,
        "expect": fixture(d.expect.format, &d.expect.rows, &d.expect.fixture),
        "name": t.name,
        "resource_type": "unit_test",
        "package_name": c.project_name,
        "path": in_its_folder(&t.defined_at.file),
        "original_file_path": file_path(&t.defined_at.file),
        "unique_id": t.unique_id,
        "fqn": t.fqn,
        "description": d.description,
        "overrides": {"macros": d.overrides.macros, "vars": d.overrides.vars, "env_vars": d.overrides.env_vars},
        "depends_on": {"macros": [], "nodes": [format!("model.{}.{}", c.project_name, t.model)]},
        "config": {"tags": d.config.tags.0, "meta": d.config.meta, "enabled": true},
        "schema": c.schema,
    })
}

fn exposure_node(project: &str, id: &str, e: &ExposureDef, at: &Location, depends: &[String]) -> Json {
    let file = file_path(&at.file);
    json!({
        "unique_id": id,
        "resource_type": "exposure",
        "package_name": project,
        "fqn": [project, e.name],
        "name": e.name,
        "label": e.label,
        "type": e.kind,
        "owner": e.owner,
        "url": e.url,
        "description": e.description,
        "maturity": e.maturity,
        "meta": e.meta,
        "tags": e.tags,
        "path": file,
        "original_file_path": file,
        "depends_on": { "nodes": depends },
    })
}

/// A project macro. Its own `depends_on.macros` is left empty (only what
/// rendering a model calls is recorded).
fn macro_node(project: &str, d: &MacroDef) -> Json {
    json!({
        "unique_id": macro_id(project, &d.name),
        "resource_type": "macro",
        "name": d.name,
        "package_name": project,
        "path": file_path(&d.path),
        "original_file_path": file_path(&d.path),
        "macro_sql": d.sql,
        "depends_on": { "macros": [] },
        "description": "",
        "meta": {},
        "arguments": [],
    })
}

/// The project's generic test macro (`test_<kind>`) a test runs, if any.
fn test_macro(compiled: &Compiled, kind: &str) -> Option<String> {
    let name = format!("test_{kind}");
    // The macros are sorted by name.
    compiled
        .macros
        .binary_search_by(|d| d.name.as_str().cmp(&name))
        .ok()
        .map(|_| macro_id(&compiled.project_name, &name))
}

/// A node's path as dbt gives it: inside its resource folder (`models/`,
/// `snapshots/`...), e.g. `staging/stg_orders.sql`.
fn in_its_folder(path: &Path) -> String {
    let mut parts = path.components();
    parts.next();
    file_path(parts.as_path())
}

fn file_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
