//! The layering of `src/` as docs/src/architecture.md draws it: every `crate::`
//! (and top-level `super::`) path in a module of `src/` is an import, and
//! no module may import one on its own line of the drawing or above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::repo;

/// The drawing's layers, top first: each line's modules.
fn layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(repo().join("docs/src/architecture.md")).unwrap();
    let start = doc.find("```layers\n").expect("docs/src/architecture.md has a ```layers block") + 10;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].lines().map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

/// The top-level module a file of `src/` belongs to (`None`: the binaries).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "main.rs" | "lib.rs" | "bin" => None,
        _ => Some(first.trim_end_matches(".rs").to_string()),
    }
}

/// Whether a file is its top-level module's root, where `super::` is the
/// crate.
fn is_root(rel: &Path) -> bool {
    rel.components().count() == 1 || rel.file_name().is_some_and(|f| f == "mod.rs") && rel.components().count() == 2
}

/// The source without comments and without its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a piece of code names after `prefix` (`crate::`):
/// `crate::a::b`, `crate::{a, b::c}`.
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.extend(first_ident(&item));
        } else {
            out.extend(first_ident(rest));
        }
    }
    out
}

fn first_ident(s: &str) -> Option<String> {
    let id: String = s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!id.is_empty() && id != "self").then_some(id)
}

/// Every import between top-level modules: (from, to) -> the files.
fn imports() -> BTreeMap<(String, String), BTreeSet<String>> {
    let src = repo().join("src");
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&src).unwrap().to_path_buf();
        if rel.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let Some(me) = module_of(&rel) else { continue };
        let code = code(&std::fs::read_to_string(entry.path()).unwrap());
        let mut named = named_after(&code, "crate::");
        if is_root(&rel) {
            named.extend(named_after(&code, "super::"));
        }
        for to in named.into_iter().filter(|to| *to != me) {
            out.entry((me.clone(), to)).or_default().insert(rel.display().to_string());
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let layers = layers();
    let level: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, line)| line.iter().map(move |m| (m.as_str(), i))).collect();
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    let modules: BTreeSet<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    let drawn: BTreeSet<&str> = level.keys().copied().collect();
    assert_eq!(modules, drawn, "docs/src/architecture.md draws exactly the modules of src/lib.rs");

    let imports = imports();
    assert!(imports.contains_key(&("commands".into(), "pipeline".into())), "the scan sees imports: {imports:?}");
    let upward: Vec<String> = imports
        .iter()
        .filter(|((from, to), _)| level.contains_key(to.as_str()) && level[to.as_str()] <= level[from.as_str()])
        .map(|((from, to), files)| format!("{from} -> {to} ({})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(upward.is_empty(), "imports on the same layer or upward:\n{}", upward.join("\n"));
}

#[test]
fn the_scan_reads_groups_paths_and_skips_comments() {
    let code = code("use crate::{a::X, b::{c, d}};\n// crate::zz\nlet v = crate::e::f(); my_crate::g;\n");
    let names = named_after(&code, "crate::");
    assert_eq!(names, ["a", "b", "e"].iter().map(|s| s.to_string()).collect());
}
