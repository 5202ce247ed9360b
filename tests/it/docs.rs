//! The docs book (`docs/`, mdBook) stays true: every relative link and
//! anchor resolves, every chapter is in SUMMARY.md, the CLI reference
//! names every subcommand of `wh --help`, and the project-format reference
//! names every model config key wh accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The markdown files the links are checked in: the README and the book.
fn pages() -> Vec<PathBuf> {
    let mut out = vec![repo().join("README.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    book.sort();
    out.extend(book);
    out
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// mdBook's (and GitHub's) anchor of a heading: lower case, spaces to
/// `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    prose(&text).lines().filter(|l| l.starts_with('#')).map(|l| anchor(l.trim_start_matches('#'))).collect()
}

/// The `(target)` of every `[label](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let text = prose(text);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn every_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, frag) = link.split_once('#').unwrap_or((link.as_str(), ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !target.exists() {
                broken.push(format!("{}: `{link}`: no file {}", page.display(), target.display()));
            } else if !frag.is_empty() && !anchors(&target).contains(frag) {
                broken.push(format!("{}: `{link}`: no heading #{frag} in {}", page.display(), target.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn summary_lists_every_chapter() {
    let summary = std::fs::read_to_string(repo().join("docs/src/SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    let chapters: BTreeSet<String> = pages()
        .iter()
        .skip(1)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "SUMMARY.md")
        .collect();
    assert_eq!(listed, chapters, "docs/src/SUMMARY.md lists exactly the chapters of docs/src/");
}

#[test]
fn cli_reference_names_every_subcommand() {
    let out = TempProject::empty().wh(&["--help"]);
    assert_exit(&out, 0);
    let help = stdout(&out);
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 15, "{commands:?}");
    let cli = std::fs::read_to_string(repo().join("docs/src/cli.md")).unwrap();
    let missing: Vec<&&str> = commands.iter().filter(|c| !cli.contains(&format!("wh {c}"))).collect();
    assert!(missing.is_empty(), "docs/src/cli.md does not describe: {missing:?}");
}

#[test]
fn project_format_names_every_config_key() {
    let doc = std::fs::read_to_string(repo().join("docs/src/project-format.md")).unwrap();
    let missing: Vec<&&str> =
        wh::project::config::CONFIG_KEYS.iter().filter(|k| !doc.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "docs/src/project-format.md does not describe: {missing:?}");
}
