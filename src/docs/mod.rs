//! The static docs site: `target/docs/index.html` plus `data.js` (the
//! project's models, sources, exposures, columns, lineage, assertions and
//! their recent history, row counts and sizes). It opens from `file://` or
//! any static host; no server, no network, no third-party JavaScript.

pub mod chart;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use crate::compile::Compiled;
use crate::lineage::ProjectLineage;

/// The page: HTML, CSS and the viewer script.
pub const INDEX_HTML: &str = include_str!("site.html");

/// Recent outcomes of one assertion, newest last: (run start, status,
/// failing rows).
pub type History = BTreeMap<String, Vec<(String, String, String)>>;

/// Each monitor's charts (SVG text), by assertion name.
pub type Charts = BTreeMap<String, Vec<String>>;

/// The site's inputs besides the project: recorded outcomes, table footers
/// and monitor charts.
pub struct Recorded<'a> {
    pub footers: &'a BTreeMap<String, crate::catalog::Footer>,
    pub history: &'a History,
    pub charts: &'a Charts,
}

/// Builds the site's data.
pub fn site_data(
    compiled: &Compiled,
    graph: &crate::graph::Graph,
    lineage: &ProjectLineage,
    exposures: &[(crate::project::config::ExposureDef, crate::diagnostic::Location)],
    recorded: &Recorded<'_>,
) -> Json {
    let (footers, history) = (recorded.footers, recorded.history);
    let mut models = Vec::new();
    for name in compiled.models.keys() {
        let m = &compiled.models[name];
        let lin = lineage.models.get(name);
        let footer = footers.get(name);
        let declared: BTreeMap<&str, &crate::project::config::ColumnDef> =
            m.columns.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut columns = Vec::new();
        let names: Vec<String> = match lin {
            Some(l) => l.columns.iter().map(|c| c.name.clone()).collect(),
            None => m.columns.iter().map(|c| c.name.clone()).collect(),
        };
        for col in &names {
            let d = declared.get(col.as_str());
            let ty = lin.and_then(|l| l.columns.iter().find(|c| &c.name == col)).map(|c| c.data_type.clone());
            columns.push(json!({
                "name": col,
                "type": ty.or_else(|| d.and_then(|d| d.data_type.clone())),
                "description": d.map(|d| d.description.clone()).unwrap_or_default(),
                "classification": d.and_then(|d| d.meta.get("classification").cloned()),
            }));
        }
        let tests: Vec<Json> = compiled
            .assertions
            .iter()
            .filter(|a| a.subject == crate::quality::Subject::Model(name.clone()))
            .map(|a| {
                json!({
                    "name": a.name,
                    "kind": a.kind,
                    "column": a.column,
                    "severity": a.severity.as_str(),
                    "history": history.get(&a.name).cloned().unwrap_or_default()
                        .iter().map(|(t, s, f)| json!({"at": t, "status": s, "failing": f})).collect::<Vec<_>>(),
                    "charts": recorded.charts.get(&a.name).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let meta = &m.config.meta;
        models.push(json!({
            "name": name,
            "path": m.path.to_string_lossy().replace('\\', "/"),
            "description": m.description,
            "materialized": m.config.materialized.as_str(),
            "access": m.access,
            "owner": meta.get("owner"),
            "steward": meta.get("steward"),
            "classification": meta.get("classification"),
            "tags": m.config.tags,
            "sql": m.sql,
            "refs": m.refs,
            "sources": m.sources,
            "columns": columns,
            "tests": tests,
            "rows": footer.map(|f| f.rows),
            "bytes": footer.map(|f| f.bytes),
            "output_path": m.output_path(),
        }));
    }
    let sources: Vec<Json> = compiled
        .sources
        .iter()
        .map(|(key, s)| {
            let cols = lineage.sources.get(key).cloned().unwrap_or_default();
            json!({
                "name": key,
                "description": if s.table.description.is_empty() { &s.table.source_description } else { &s.table.description },
                "location": s.location,
                "owner": s.table.meta.get("owner"),
                "columns": cols.iter().map(|(n, t)| json!({"name": n, "type": t, "description":
                    s.table.columns.iter().find(|c| &c.name == n).map(|c| c.description.clone()).unwrap_or_default()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let exposures: Vec<Json> = exposures
        .iter()
        .map(|(e, _)| {
            json!({
                "name": e.name,
                "label": e.label,
                "type": e.kind,
                "url": e.url,
                "owner": e.owner,
                "description": e.description,
                "depends_on": e.depends_on.iter().filter_map(|d| crate::project::exposure_ref(d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    // Column edges, output -> input, with kinds (direct and window only).
    let edges: Vec<Json> = lineage
        .edges(false)
        .into_iter()
        .map(|((o, i), k)| json!([format!("{}.{}", o.0, o.1), format!("{}.{}", i.0, i.1), k]))
        .collect();
    let mut layers = Map::new();
    for (name, depth) in depths(compiled, graph) {
        layers.insert(name, json!(depth));
    }
    json!({
        "project": compiled.project_name,
        "models": models,
        "sources": sources,
        "exposures": exposures,
        "edges": edges,
        "layers": layers,
    })
}

/// Returns each node's column in the graph: sources 0, models 1 + the
/// longest chain of refs before them.
pub fn depths(compiled: &Compiled, graph: &crate::graph::Graph) -> BTreeMap<String, usize> {
    let mut depth: BTreeMap<String, usize> = compiled.sources.keys().map(|k| (k.clone(), 0)).collect();
    for name in graph.order() {
        let d = compiled.models[name].refs.iter().filter_map(|r| depth.get(r)).max().map(|d| d + 1).unwrap_or(1);
        depth.insert(name.clone(), d);
    }
    depth
}
