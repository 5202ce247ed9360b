//! Node selection, dbt's graph operators.
//!
//! Grammar (one `--select` or `--exclude` value; several values are a union):
//!
//! ```text
//! selection := term (' ' term)*             union
//! term      := atom (',' atom)*             intersection
//! atom      := '@' method                   the node, its descendants and all their ancestors
//!            | [N] ['+'] method ['+' [N]]   N generations of ancestors / descendants (all without N)
//! method    := 'tag:' GLOB | 'path:' PATH | 'source:' SOURCE ['.' TABLE]
//!            | 'config.materialized:' NAME | 'fqn:' GLOB | GLOB (a model name; '*' matches any text)
//!            | 'state:' ('modified' | 'new')     against the previous manifest (`--state`)
//!            | 'result:' STATUS                  in the previous run_results: error, skipped,
//!                                                success, or fail / warn (an assertion on the model)
//!            | 'test_type:' ('unit' | 'data' | 'generic' | 'singular')
//! ```
//!
//! `test_type:x` selects the models with a test of that type, and the
//! command runs only those tests; in `--exclude` it leaves the models and
//! drops those tests (`--exclude test_type:unit` builds without unit tests).
//!
//! `source:x` selects no model by itself; `source:x+` selects the models
//! that read it and their descendants.

use std::collections::BTreeSet;
use std::fmt;

use super::{Graph, GraphError};
use crate::compile::Compiled;
use crate::diagnostic::did_you_mean;

/// How far a graph operator reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    None,
    All,
    Depth(usize),
}

/// Where an atom starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Name(String),
    Tag(String),
    Path(String),
    Source(String),
    Materialized(String),
    State(String),
    Result(String),
    TestType(String),
}

/// Test types `test_type:` names.
const TEST_TYPES: [&str; 4] = ["unit", "data", "generic", "singular"];

/// Which tests a command line's `test_type:` atoms leave.
#[derive(Debug, Clone, Default)]
pub struct TestTypes {
    include: BTreeSet<String>,
    exclude: BTreeSet<String>,
}

impl TestTypes {
    pub fn of(select: &Selection, exclude: &Selection) -> TestTypes {
        TestTypes { include: select.test_types(), exclude: exclude.test_types() }
    }

    /// Returns whether a test of `kind` (an assertion's kind) runs.
    pub fn allows(&self, kind: &str) -> bool {
        let types: &[&str] = match kind {
            crate::compile::unit_tests::UNIT_KIND => &["unit"],
            "singular" => &["data", "singular"],
            _ => &["data", "generic"],
        };
        (self.include.is_empty() || types.iter().any(|t| self.include.contains(*t)))
            && !types.iter().any(|t| self.exclude.contains(*t))
    }
}

pub use super::previous::Previous;

/// One selector atom with its graph operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub at: bool,
    pub parents: Reach,
    pub method: Method,
    pub children: Reach,
}

/// A parsed selection: a union of intersections of atoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection(pub Vec<Vec<Atom>>);

impl Selection {
    /// Returns whether an atom selects against the previous run's
    /// artifacts (`state:`, `result:`), which are read only then.
    pub fn reads_previous(&self) -> bool {
        self.0.iter().flatten().any(|a| matches!(a.method, Method::State(_) | Method::Result(_)))
    }

    /// Returns the test types its `test_type:` atoms name.
    fn test_types(&self) -> BTreeSet<String> {
        let types = self.0.iter().flatten().filter_map(|a| match &a.method {
            Method::TestType(t) => Some(t.clone()),
            _ => None,
        });
        types.collect()
    }

    /// Returns it without the terms that name a test type.
    fn without_test_types(&self) -> Selection {
        let keep = |term: &&Vec<Atom>| !term.iter().any(|a| matches!(a.method, Method::TestType(_)));
        Selection(self.0.iter().filter(keep).cloned().collect())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Name(n) => write!(f, "{n}"),
            Method::Tag(t) => write!(f, "tag:{t}"),
            Method::Path(p) => write!(f, "path:{p}"),
            Method::Source(s) => write!(f, "source:{s}"),
            Method::Materialized(m) => write!(f, "config.materialized:{m}"),
            Method::State(s) => write!(f, "state:{s}"),
            Method::Result(s) => write!(f, "result:{s}"),
            Method::TestType(t) => write!(f, "test_type:{t}"),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at {
            return write!(f, "@{}", self.method);
        }
        match self.parents {
            Reach::None => {}
            Reach::All => write!(f, "+")?,
            Reach::Depth(n) => write!(f, "{n}+")?,
        }
        write!(f, "{}", self.method)?;
        match self.children {
            Reach::None => Ok(()),
            Reach::All => write!(f, "+"),
            Reach::Depth(n) => write!(f, "+{n}"),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> =
            self.0.iter().map(|t| t.iter().map(Atom::to_string).collect::<Vec<_>>().join(",")).collect();
        write!(f, "{}", terms.join(" "))
    }
}

impl Selection {
    /// Returns this selection narrowed to what `other` selects too (every
    /// term of one with every term of the other; nothing given selects all).
    pub fn and(&self, other: &Selection) -> Selection {
        match (self.0.is_empty(), other.0.is_empty()) {
            (true, _) => other.clone(),
            (_, true) => self.clone(),
            _ => Selection(
                self.0.iter().flat_map(|a| other.0.iter().map(move |b| a.iter().chain(b).cloned().collect())).collect(),
            ),
        }
    }
}

fn selector_error(message: String, hint: Option<String>) -> GraphError {
    GraphError::Selector { message, hint }
}

/// Parses selector values (each may hold several space-separated terms).
pub fn parse(values: &[String]) -> Result<Selection, GraphError> {
    let mut terms = Vec::new();
    for value in values {
        for term in value.split_whitespace() {
            let atoms = term.split(',').map(parse_atom).collect::<Result<Vec<_>, _>>()?;
            terms.push(atoms);
        }
    }
    Ok(Selection(terms))
}

fn parse_atom(text: &str) -> Result<Atom, GraphError> {
    let bad = || {
        selector_error(
            format!("invalid selector `{text}`"),
            Some("use model, +model, model+, +model+, 2+model+1, @model, tag:x, path:models/marts, source:src".into()),
        )
    };
    if let Some(rest) = text.strip_prefix('@') {
        return Ok(Atom {
            at: true,
            parents: Reach::None,
            method: parse_method(rest).ok_or_else(bad)?,
            children: Reach::None,
        });
    }
    let digits = text.chars().take_while(|c| c.is_ascii_digit()).count();
    let mut rest = text;
    let mut parents = Reach::None;
    if rest[digits..].starts_with('+') {
        parents = if digits == 0 { Reach::All } else { Reach::Depth(rest[..digits].parse().map_err(|_| bad())?) };
        rest = &rest[digits + 1..];
    }
    let mut children = Reach::None;
    if let Some(pos) = rest.rfind('+') {
        let tail = &rest[pos + 1..];
        if tail.chars().all(|c| c.is_ascii_digit()) {
            children = if tail.is_empty() { Reach::All } else { Reach::Depth(tail.parse().map_err(|_| bad())?) };
            rest = &rest[..pos];
        }
    }
    let method = parse_method(rest).ok_or_else(bad)?;
    Ok(Atom { at: false, parents, method, children })
}

fn parse_method(text: &str) -> Option<Method> {
    if text.is_empty() || text.contains('+') || text.contains('@') {
        return None;
    }
    let method = match text.split_once(':') {
        None => Method::Name(text.to_string()),
        Some(("tag", v)) => Method::Tag(v.to_string()),
        Some(("path", v)) => Method::Path(v.trim_end_matches('/').to_string()),
        Some(("source", v)) => Method::Source(v.to_string()),
        Some(("config.materialized", v)) => Method::Materialized(v.to_string()),
        Some(("fqn", v)) => Method::Name(v.to_string()),
        Some(("state", v)) if ["modified", "new"].contains(&v) => Method::State(v.to_string()),
        Some(("result", v)) if ["error", "fail", "warn", "skipped", "success"].contains(&v) => {
            Method::Result(v.to_string())
        }
        Some(("test_type", v)) if TEST_TYPES.contains(&v) => Method::TestType(v.to_string()),
        Some(_) => return None,
    };
    Some(method)
}

/// Returns the models selected by `select` (all when empty) minus `exclude`.
pub fn select(
    compiled: &Compiled,
    graph: &Graph,
    select: &Selection,
    exclude: &Selection,
    previous: &Previous,
) -> Result<BTreeSet<String>, GraphError> {
    let mut chosen: BTreeSet<String> = if select.0.is_empty() {
        compiled.models.keys().cloned().collect()
    } else {
        evaluate(compiled, graph, select, previous)?
    };
    // An excluded test type drops tests, not models.
    for name in evaluate(compiled, graph, &exclude.without_test_types(), previous)? {
        chosen.remove(&name);
    }
    Ok(chosen)
}

fn evaluate(
    compiled: &Compiled,
    graph: &Graph,
    selection: &Selection,
    previous: &Previous,
) -> Result<BTreeSet<String>, GraphError> {
    let mut union = BTreeSet::new();
    for term in &selection.0 {
        let mut acc: Option<BTreeSet<String>> = None;
        for atom in term {
            let set = atom_models(compiled, graph, atom, previous)?;
            acc = Some(match acc {
                None => set,
                Some(prev) => prev.intersection(&set).cloned().collect(),
            });
        }
        union.extend(acc.unwrap_or_default());
    }
    Ok(union)
}

fn atom_models(
    compiled: &Compiled,
    graph: &Graph,
    atom: &Atom,
    previous: &Previous,
) -> Result<BTreeSet<String>, GraphError> {
    let (base, source_children) = match &atom.method {
        Method::State(_) | Method::Result(_) => (from_previous(compiled, &atom.method, previous)?, BTreeSet::new()),
        method => base_models(compiled, graph, method)?,
    };
    let mut out = base.clone();
    let reach = |r: Reach| match r {
        Reach::All => Some(None),
        Reach::Depth(n) => Some(Some(n)),
        Reach::None => None,
    };
    if atom.at {
        let mut down = base.clone();
        for m in &base {
            down.extend(graph.descendants(m, None));
        }
        down.extend(source_children.iter().cloned());
        for m in &source_children {
            down.extend(graph.descendants(m, None));
        }
        for m in down.clone() {
            out.extend(graph.ancestors(&m, None));
        }
        out.extend(down);
        return Ok(out);
    }
    if let Some(depth) = reach(atom.parents) {
        for m in &base {
            out.extend(graph.ancestors(m, depth));
        }
    }
    if let Some(depth) = reach(atom.children) {
        for m in &base {
            out.extend(graph.descendants(m, depth));
        }
        // A source's children are its first generation.
        let rest = depth.map(|d| d.saturating_sub(1));
        for m in &source_children {
            out.insert(m.clone());
            if rest != Some(0) {
                out.extend(graph.descendants(m, rest));
            }
        }
    }
    Ok(out)
}

/// Returns the models a `state:` or `result:` method names.
fn from_previous(compiled: &Compiled, method: &Method, previous: &Previous) -> Result<BTreeSet<String>, GraphError> {
    let missing = |what: &str| {
        selector_error(
            format!("`{method}` needs the previous {what}, and there is none in `{}`", previous.dir.display()),
            Some("run `wh build` (or `wh compile`) first, or point --state at a folder of artifacts".into()),
        )
    };
    match method {
        Method::State(kind) => {
            let manifest = previous.manifest.get()?.ok_or_else(|| missing("manifest.json"))?;
            Ok(compiled
                .models
                .values()
                .filter(|m| {
                    let old = manifest.nodes.get(&m.unique_id);
                    match (kind.as_str(), old) {
                        (_, None) => true,
                        ("new", Some(_)) => false,
                        (_, Some(old)) => {
                            old.checksum.as_ref().map(|c| c.checksum.as_str())
                                != Some(crate::compile::checksum::checksum(m).as_str())
                        }
                    }
                })
                .map(|m| m.name.clone())
                .collect())
        }
        Method::Result(status) => {
            let results = previous.run_results.get()?.ok_or_else(|| missing("run_results.json"))?;
            let by_id: std::collections::HashMap<&str, &str> =
                compiled.models.values().map(|m| (m.unique_id.as_str(), m.name.as_str())).collect();
            let mut out = BTreeSet::new();
            for r in results.results.iter().filter(|r| r.status == *status) {
                // A model's own status, or for an assertion the models it checks.
                let id = if r.is_test() { r.attached_node() } else { Some(r.unique_id.as_str()) };
                out.extend(id.and_then(|n| by_id.get(n)).map(|n| n.to_string()));
            }
            Ok(out)
        }
        _ => Ok(BTreeSet::new()),
    }
}

/// Returns the models an atom's method names, and for `source:` the models
/// that read the named sources.
fn base_models(
    compiled: &Compiled,
    graph: &Graph,
    method: &Method,
) -> Result<(BTreeSet<String>, BTreeSet<String>), GraphError> {
    let models = compiled.models.values();
    let set: BTreeSet<String> = match method {
        Method::Name(pattern) => {
            let set: BTreeSet<String> = models.filter(|m| glob(pattern, &m.name)).map(|m| m.name.clone()).collect();
            if set.is_empty() {
                return Err(selector_error(
                    format!("no model matches `{pattern}`"),
                    did_you_mean(pattern, compiled.models.keys().map(String::as_str)),
                ));
            }
            set
        }
        Method::Tag(t) => models.filter(|m| m.config.tags.iter().any(|x| glob(t, x))).map(|m| m.name.clone()).collect(),
        Method::Path(p) => models
            .filter(|m| {
                let path = m.path.to_string_lossy().replace('\\', "/");
                path == *p || path.starts_with(&format!("{p}/")) || glob(p, &path)
            })
            .map(|m| m.name.clone())
            .collect(),
        Method::Materialized(x) => {
            models.filter(|m| m.config.materialized.as_str() == x).map(|m| m.name.clone()).collect()
        }
        Method::Source(s) => {
            let readers: BTreeSet<String> = graph
                .source_children
                .iter()
                .filter(|(key, _)| *key == s || key.split('.').next() == Some(s.as_str()) || glob(s, key))
                .flat_map(|(_, c)| c.iter().cloned())
                .collect();
            if !compiled.sources.keys().any(|k| k == s || k.split('.').next() == Some(s.as_str()) || glob(s, k)) {
                return Err(selector_error(
                    format!("no source matches `{s}`"),
                    did_you_mean(s, compiled.sources.keys().map(String::as_str)),
                ));
            }
            return Ok((BTreeSet::new(), readers));
        }
        Method::TestType(t) => {
            let types = TestTypes { include: BTreeSet::from([t.clone()]), exclude: BTreeSet::new() };
            let mut set: BTreeSet<String> = compiled
                .assertions
                .iter()
                .filter(|a| types.allows(&a.kind))
                .filter_map(|a| match &a.subject {
                    crate::compile::assertions::Subject::Model(m) => Some(m.clone()),
                    _ => None,
                })
                .collect();
            if types.allows(crate::compile::unit_tests::UNIT_KIND) {
                set.extend(compiled.unit_tests.iter().map(|u| u.model.clone()));
            }
            set
        }
        Method::State(_) | Method::Result(_) => BTreeSet::new(),
    };
    Ok((set, BTreeSet::new()))
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else { return false };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for s in [
            "stg_orders",
            "+fct_orders",
            "dim_date+",
            "+mart+",
            "2+x+1",
            "@y",
            "tag:pii,path:models/marts",
            "source:shop+",
        ] {
            assert_eq!(parse(&[s.to_string()]).unwrap().to_string(), s);
        }
        assert!(parse(&["+".to_string()]).is_err());
        assert!(parse(&["nope:x".to_string()]).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("stg_*", "stg_orders"));
        assert!(glob("*_orders", "stg_orders"));
        assert!(glob("s*o*s", "stg_orders"));
        assert!(!glob("dim_*", "stg_orders"));
    }
}
