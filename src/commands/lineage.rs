//! `wh lineage MODEL[.COLUMN]`: table or column lineage, upstream (default)
//! or downstream (impact analysis), as a tree, JSON, Graphviz dot or Mermaid.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use serde_json::json;

use super::{compile_project, Settings};
use crate::cli::LineageFormat;
use crate::diagnostic::did_you_mean;
use crate::error::Error;
use crate::lineage::Kind;

/// What `wh lineage` was asked.
pub struct Request<'a> {
    pub target: &'a str,
    pub downstream: bool,
    pub depth: Option<usize>,
    pub format: LineageFormat,
    pub indirect: bool,
}

type Node = (String, String);
/// Lineage edges output -> input, with their kinds.
type Edges = BTreeMap<(Node, Node), BTreeSet<Kind>>;
/// The edges a walk reached, in walk order.
type Reached = Vec<(Node, Node, BTreeSet<Kind>)>;

/// Prints the lineage of a model or a column.
pub async fn execute(settings: &Settings, req: Request<'_>) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let (relation, column) = parse_target(&compiled, req.target)?;
    let (mut edges, unresolved) = match &column {
        Some(col) => {
            let lin = super::context::Context::open(settings, &compiled)?.lineage(&compiled, &graph).await;
            check_column(&lin, &relation, col)?;
            (lin.edges(req.indirect), lin.unresolved)
        }
        None => (table_edges(&compiled), BTreeMap::new()),
    };
    add_exposures(&mut edges, &settings.project.exposures, column.is_some());
    let root: Node = (relation.clone(), column.clone().unwrap_or_default());
    let mut next: BTreeMap<Node, Vec<(Node, BTreeSet<Kind>)>> = BTreeMap::new();
    for ((out, inp), kinds) in &edges {
        let (from, to) = if req.downstream { (inp, out) } else { (out, inp) };
        next.entry(from.clone()).or_default().push((to.clone(), kinds.clone()));
    }
    let mut reached: Reached = Vec::new();
    let mut text = format!("{}\n", label(&root, &compiled));
    walk(&root, &next, req.depth, 0, "", &mut text, &mut reached, &mut BTreeSet::new(), &compiled);
    for (m, why) in &unresolved {
        text.push_str(&format!("(not resolved: {m}: {why})\n"));
    }
    let out = match req.format {
        LineageFormat::Tree => text,
        LineageFormat::Json => as_json(&root, &reached, req.downstream, &unresolved),
        LineageFormat::Dot => as_dot(&reached, req.downstream),
        LineageFormat::Mermaid => as_mermaid(&reached, req.downstream),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Splits MODEL, MODEL.COLUMN, SOURCE.TABLE or SOURCE.TABLE.COLUMN.
fn parse_target(compiled: &crate::compile::Compiled, target: &str) -> Result<(String, Option<String>), Error> {
    let is_relation = |r: &str| compiled.models.contains_key(r) || compiled.sources.contains_key(r);
    match target.rsplit_once('.') {
        Some((r, c)) if is_relation(r) => Ok((r.to_string(), Some(c.to_string()))),
        _ if is_relation(target) => Ok((target.to_string(), None)),
        _ => Err(Error::Usage {
            message: format!("`{target}` is neither a model, a source table, nor one of their columns"),
            hint: did_you_mean(target.split('.').next().unwrap_or(""), compiled.models.keys().map(String::as_str))
                .or_else(|| Some("write MODEL, MODEL.COLUMN, SOURCE.TABLE or SOURCE.TABLE.COLUMN".into())),
        }),
    }
}

/// Fails unless `relation` has column `col`, with a did-you-mean.
fn check_column(lin: &crate::lineage::ProjectLineage, relation: &str, col: &str) -> Result<(), Error> {
    let cols: Vec<String> = lin
        .models
        .get(relation)
        .map(|m| m.columns.iter().map(|c| c.name.clone()).collect())
        .or_else(|| lin.sources.get(relation).map(|s| s.iter().map(|(c, _)| c.clone()).collect()))
        .unwrap_or_default();
    if cols.iter().any(|c| c == col) {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!("`{relation}` has no column `{col}`"),
        hint: did_you_mean(col, cols.iter().map(String::as_str)),
    })
}

/// Table lineage: each model to the models and sources it reads.
fn table_edges(compiled: &crate::compile::Compiled) -> Edges {
    let mut edges = Edges::new();
    for (name, m) in &compiled.models {
        for input in m.refs.iter().chain(&m.sources) {
            edges.insert(((name.clone(), String::new()), (input.clone(), String::new())), BTreeSet::new());
        }
    }
    edges
}

/// Exposures read whole models: every column of a model they read leads
/// to them.
fn add_exposures(
    edges: &mut Edges,
    exposures: &[(crate::project::config::ExposureDef, crate::diagnostic::Location)],
    columns: bool,
) {
    for (e, _) in exposures {
        let node: Node = (format!("exposure:{}", e.name), String::new());
        for m in e.depends_on.iter().filter_map(|d| crate::project::exposure_ref(d)) {
            let outputs: BTreeSet<Node> = if columns {
                edges.keys().filter(|((r, _), _)| r == &m).map(|(o, _)| o.clone()).collect()
            } else {
                BTreeSet::from([(m.clone(), String::new())])
            };
            for o in outputs {
                edges.insert((node.clone(), o), BTreeSet::new());
            }
        }
    }
}

fn name(n: &Node) -> String {
    if n.1.is_empty() {
        n.0.clone()
    } else {
        format!("{}.{}", n.0, n.1)
    }
}

fn kinds(k: &BTreeSet<Kind>) -> String {
    k.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
}

fn as_json(root: &Node, reached: &Reached, downstream: bool, unresolved: &BTreeMap<String, String>) -> String {
    let edges: Vec<_> = reached
        .iter()
        .map(|(a, b, k)| json!({"from": name(a), "to": name(b), "kinds": k.iter().map(|x| x.as_str()).collect::<Vec<_>>()}))
        .collect();
    let nodes: BTreeSet<String> = reached.iter().flat_map(|(a, b, _)| [name(a), name(b)]).chain([name(root)]).collect();
    let v = json!({
        "root": name(root),
        "direction": if downstream { "downstream" } else { "upstream" },
        "nodes": nodes,
        "edges": edges,
        "unresolved": unresolved,
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn as_dot(reached: &Reached, downstream: bool) -> String {
    let mut s = String::from("digraph lineage {\n  rankdir=LR;\n");
    for (a, b, k) in reached {
        let (src, dst) = if downstream { (a, b) } else { (b, a) };
        s.push_str(&format!("  \"{}\" -> \"{}\" [label=\"{}\"];\n", name(src), name(dst), kinds(k)));
    }
    s.push_str("}\n");
    s
}

fn as_mermaid(reached: &Reached, downstream: bool) -> String {
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut s = String::from("flowchart LR\n");
    let mut id = |n: String, s: &mut String| {
        let len = ids.len();
        let i = *ids.entry(n.clone()).or_insert(len);
        if i == len {
            s.push_str(&format!("  n{i}[\"{n}\"]\n"));
        }
        i
    };
    for (a, b, k) in reached {
        let (src, dst) = if downstream { (a, b) } else { (b, a) };
        let (x, y) = (id(name(src), &mut s), id(name(dst), &mut s));
        if k.is_empty() {
            s.push_str(&format!("  n{x} --> n{y}\n"));
        } else {
            s.push_str(&format!("  n{x} -->|{}| n{y}\n", kinds(k)));
        }
    }
    s
}

fn label(n: &Node, compiled: &crate::compile::Compiled) -> String {
    if let Some(e) = n.0.strip_prefix("exposure:") {
        return format!("{e} (exposure)");
    }
    let what = if compiled.sources.contains_key(&n.0) { " (source)" } else { "" };
    if n.1.is_empty() {
        format!("{}{what}", n.0)
    } else {
        format!("{}.{}{what}", n.0, n.1)
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    node: &Node,
    next: &BTreeMap<Node, Vec<(Node, BTreeSet<Kind>)>>,
    depth: Option<usize>,
    level: usize,
    prefix: &str,
    text: &mut String,
    reached: &mut Vec<(Node, Node, BTreeSet<Kind>)>,
    seen: &mut BTreeSet<(Node, Node)>,
    compiled: &crate::compile::Compiled,
) {
    if depth.is_some_and(|d| level >= d) {
        return;
    }
    let Some(children) = next.get(node) else { return };
    for (i, (child, kinds)) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let tag = if kinds.is_empty() {
            String::new()
        } else {
            format!(" [{}]", kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))
        };
        text.push_str(&format!("{prefix}{}{}{tag}\n", if last { "└── " } else { "├── " }, label(child, compiled)));
        if seen.insert((node.clone(), child.clone())) {
            reached.push((node.clone(), child.clone(), kinds.clone()));
        }
        let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
        walk(child, next, depth, level + 1, &deeper, text, reached, seen, compiled);
    }
}
