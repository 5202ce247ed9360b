//! The model DAG: parents and children from recorded refs and sources,
//! a deterministic topological order, and cycles reported with their path.

pub mod previous;
pub mod selector;

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::Compiled;
use crate::diagnostic::{find_in_text, Location};

/// A graph problem: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String>, location: Location },
    #[error("{message}")]
    Selector { message: String, hint: Option<String> },
    /// A previous run's artifact that does not parse.
    #[error("{message}")]
    Artifact { message: String, location: Location },
}

/// Where `sql` names `parent` in a ref: the quoted name (`'c'` or `"c"`),
/// else the bare name, else the start of the file.
fn ref_position(sql: &str, parent: &str) -> (usize, usize) {
    [format!("'{parent}'"), format!("\"{parent}\""), parent.to_string()]
        .iter()
        .find_map(|needle| find_in_text(sql, needle))
        .unwrap_or((0, 0))
}

/// Models with their model parents and children, and the models that read
/// each source.
#[derive(Debug, Clone)]
pub struct Graph {
    pub parents: BTreeMap<String, BTreeSet<String>>,
    pub children: BTreeMap<String, BTreeSet<String>>,
    pub source_children: BTreeMap<String, BTreeSet<String>>,
    order: Vec<String>,
}

impl Graph {
    /// Builds the DAG of `compiled`; fails on a cycle.
    pub fn build(compiled: &Compiled) -> Result<Graph, GraphError> {
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut source_children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, model) in &compiled.models {
            parents.entry(name.clone()).or_default().extend(model.refs.iter().cloned());
            children.entry(name.clone()).or_default();
            for r in &model.refs {
                children.entry(r.clone()).or_default().insert(name.clone());
            }
            for s in &model.sources {
                source_children.entry(s.clone()).or_default().insert(name.clone());
            }
        }
        let order = topo_order(&parents, &children).map_err(|cycle| {
            let first = &compiled.models[&cycle[0]];
            let (line, col) = ref_position(&first.raw_sql, &cycle[1]);
            GraphError::Cycle { path: cycle, location: Location::at(&first.path, line, col) }
        })?;
        Ok(Graph { parents, children, source_children, order })
    }

    /// Returns every model, parents before children, ties by name.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// Returns the ancestors of `name` up to `depth` generations (all if None).
    pub fn ancestors(&self, name: &str, depth: Option<usize>) -> BTreeSet<String> {
        walk(&self.parents, name, depth)
    }

    /// Returns the descendants of `name` up to `depth` generations (all if None).
    pub fn descendants(&self, name: &str, depth: Option<usize>) -> BTreeSet<String> {
        walk(&self.children, name, depth)
    }
}

fn walk(edges: &BTreeMap<String, BTreeSet<String>>, start: &str, depth: Option<usize>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut frontier = vec![start.to_string()];
    let mut level = 0;
    while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
        let mut next = Vec::new();
        for node in frontier {
            for n in edges.get(&node).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    next.push(n.clone());
                }
            }
        }
        frontier = next;
        level += 1;
    }
    seen
}

/// Kahn's algorithm with a sorted ready set; on a cycle returns its path
/// `a, b, c, a`.
fn topo_order(
    parents: &BTreeMap<String, BTreeSet<String>>,
    children: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, Vec<String>> {
    let mut pending: BTreeMap<&str, usize> = parents.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
    let mut ready: BTreeSet<&str> = pending.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    let mut order = Vec::with_capacity(parents.len());
    while let Some(node) = ready.pop_first() {
        pending.remove(node);
        order.push(node.to_string());
        for child in children.get(node).into_iter().flatten() {
            if let Some(n) = pending.get_mut(child.as_str()) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(child.as_str());
                }
            }
        }
    }
    if pending.is_empty() {
        return Ok(order);
    }
    // Every pending node lies on or behind a cycle: follow parents that are
    // still pending until a node repeats.
    let mut path: Vec<String> = Vec::new();
    let mut node = pending.keys().next().copied().unwrap_or_default().to_string();
    loop {
        if let Some(pos) = path.iter().position(|n| n == &node) {
            // `a -> b` reads "a refs b".
            let mut cycle: Vec<String> = path[pos..].to_vec();
            cycle.push(node);
            return Err(cycle);
        }
        path.push(node.clone());
        node = parents[&node].iter().find(|p| pending.contains_key(p.as_str())).cloned().unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(&str, &str)]) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, BTreeSet<String>>) {
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (child, parent) in pairs {
            parents.entry(child.to_string()).or_default().insert(parent.to_string());
            parents.entry(parent.to_string()).or_default();
            children.entry(parent.to_string()).or_default().insert(child.to_string());
            children.entry(child.to_string()).or_default();
        }
        (parents, children)
    }

    #[test]
    fn orders_parents_first_with_name_ties() {
        let (p, c) = edges(&[("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")]);
        assert_eq!(topo_order(&p, &c).unwrap(), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn reports_cycle_path() {
        let (p, c) = edges(&[("a", "c"), ("b", "a"), ("c", "b"), ("x", "a")]);
        let cycle = topo_order(&p, &c).unwrap_err();
        assert_eq!(cycle, vec!["a", "c", "b", "a"]);
    }
}
