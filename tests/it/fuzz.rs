//! Bad input, fuzzed: random and mutated inputs to the selector grammar,
//! size parsing, `--vars`, the project's YAML files and model templates.
//! Every input must end in `Ok` or in a diagnostic, never a panic. Inputs
//! come from a seeded generator (ChaCha8), so a failure names its seed and
//! case and replays; `WH_FUZZ_CASES` multiplies the cases for a long local
//! run (`WH_FUZZ_CASES=100 cargo test --all-features --test it fuzz::`).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

/// Cases per target: `base` times `WH_FUZZ_CASES` (default 1).
fn cases(base: usize) -> usize {
    base * std::env::var("WH_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// A string of `n` random pieces from `alphabet`.
fn pieces(rng: &mut ChaCha8Rng, alphabet: &[&str], n: usize) -> String {
    (0..rng.random_range(0..=n)).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
}

/// `text` with a few random edits: a range deleted, a piece inserted, two
/// lines swapped, a line duplicated.
fn mutate(rng: &mut ChaCha8Rng, text: &str, inserts: &[&str]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..4) {
            0 if !chars.is_empty() => {
                let end = (at + rng.random_range(1..12)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 | 0 => {
                let piece = inserts[rng.random_range(0..inserts.len())];
                chars.splice(at..at, piece.chars());
            }
            _ => {
                let mut lines: Vec<String> = chars.iter().collect::<String>().lines().map(str::to_string).collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.random_range(0..lines.len()), rng.random_range(0..lines.len()));
                    if rng.random_bool(0.5) {
                        lines.swap(a, b);
                    } else {
                        let line = lines[a].clone();
                        lines.insert(b, line);
                    }
                }
                chars = (lines.join("\n") + "\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// Runs `case` for each input; collects the inputs that panicked.
fn no_panics(target: &str, inputs: impl IntoIterator<Item = String>, case: impl Fn(&str)) -> usize {
    let mut panicked = Vec::new();
    let mut tried = 0;
    for input in inputs {
        tried += 1;
        if catch_unwind(AssertUnwindSafe(|| case(&input))).is_err() {
            panicked.push(input);
        }
    }
    assert!(panicked.is_empty(), "{target}: {} of {tried} inputs panicked, e.g. {:?}", panicked.len(), &panicked[..1]);
    eprintln!("fuzz {target}: {tried} inputs, no panic");
    tried
}

const SELECTOR_PIECES: &[&str] = &[
    "+",
    "@",
    "tag:",
    "path:",
    "source:",
    "state:",
    "result:",
    "config.materialized:",
    "stg_*",
    ",",
    " ",
    "1",
    "2",
    "99999999999999999999",
    "stg_orders",
    "*",
    ":",
    ".",
    "models/",
    "shop.orders",
    "\u{0}",
    "é",
    "-",
    "(",
    ")",
    "modified",
    "new",
    "error",
    "table",
    "marts",
];

#[test]
fn the_selector_grammar_never_panics() {
    let p = TempProject::example();
    let project = wh::project::Project::load(p.path(), &Default::default()).unwrap();
    let compiled = wh::compile::compile(&project).unwrap();
    let graph = wh::graph::Graph::build(&compiled).unwrap();
    let previous = wh::graph::selector::Previous::none();
    let empty = wh::graph::selector::Selection(Vec::new());
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let inputs: Vec<String> = (0..cases(3000)).map(|_| pieces(&mut rng, SELECTOR_PIECES, 8)).collect();
    no_panics("selector", inputs, |text| {
        let values: Vec<String> = text.split(' ').map(str::to_string).collect();
        if let Ok(sel) = wh::graph::selector::parse(&values) {
            let _ = wh::graph::selector::select(&compiled, &graph, &sel, &empty, &previous);
            let _ = wh::graph::selector::select(&compiled, &graph, &empty, &sel, &previous);
        }
    });
}

#[test]
fn size_parsing_never_panics_and_reads_whole_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let alphabet = ["1", "0", "9", ".", "e", "-", "k", "M", "GiB", "TB", " ", "b", "1e400", "NaN", "inf", "\u{a0}"];
    let inputs: Vec<String> = (0..cases(5000)).map(|_| pieces(&mut rng, &alphabet, 6)).collect();
    no_panics("size", inputs, |text| {
        let _ = wh::commands::parse_size(text);
    });
    for n in [1usize, 7, 1024, 123_456_789] {
        assert_eq!(wh::commands::parse_size(&n.to_string()), Some(n));
    }
    assert_eq!(wh::commands::parse_size("2 KiB"), Some(2048));
    assert_eq!(wh::commands::parse_size("0"), None);
}

#[test]
fn vars_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let alphabet = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "a",
        "raw_root",
        "'x'",
        "\"y\"",
        "&a",
        "*a",
        "!!binary",
        "? ",
        "- ",
        "\n",
        "1e999",
        "~",
        "null",
        "<<: *a",
        "%YAML 1.2\n",
        "---\n",
        "\\",
        "\t",
    ];
    let inputs: Vec<String> = (0..cases(3000)).map(|_| pieces(&mut rng, &alphabet, 12)).collect();
    no_panics("--vars", inputs, |text| {
        let _ = wh::project::yaml::parse_inline::<BTreeMap<String, serde_json::Value>>(text, "--vars");
    });
}

const YAML_PIECES: &[&str] = &[
    ":",
    " ",
    "  ",
    "\n",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "&x",
    "*x",
    "!!map",
    "+materialized: view\n",
    "config:\n",
    "tests:\n",
    "data_tests:\n  - unique\n",
    "columns:\n",
    "name: ",
    "~",
    "1e9999",
    "\t",
    "#",
    "models:\n",
    "sources:\n",
    "tables:\n",
    "..",
    "/etc/passwd",
    "{{ ref('x') }}",
    "é",
    "\u{0}",
];

/// Loads, compiles and graphs the project in `dir`: any result but a panic.
fn load_and_compile(dir: &Path) {
    if let Ok(project) = wh::project::Project::load(dir, &Default::default()) {
        if let Ok(compiled) = wh::compile::compile(&project) {
            let _ = wh::graph::Graph::build(&compiled);
        }
    }
}

#[test]
fn mutated_project_files_never_panic() {
    let p = TempProject::example();
    let files = ["wh_project.yml", "sources.yml", "models/marts/_marts.yml", "models/staging/_staging.yml"];
    let originals: Vec<String> = files.iter().map(|f| std::fs::read_to_string(p.path().join(f)).unwrap()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    // Each input: which file, a separator, its mutated text.
    let inputs: Vec<String> = (0..cases(150))
        .map(|n| format!("{}\u{1}{}", n % files.len(), mutate(&mut rng, &originals[n % files.len()], YAML_PIECES)))
        .collect();
    no_panics("project YAML", inputs, |case| {
        let (i, text) = case.split_once('\u{1}').unwrap();
        let i: usize = i.parse().unwrap();
        std::fs::write(p.path().join(files[i]), text).unwrap();
        load_and_compile(p.path());
        std::fs::write(p.path().join(files[i]), &originals[i]).unwrap();
    });
}

const JINJA_PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " ref(",
    "source(",
    "'shop'",
    ", ",
    "'orders'",
    ")",
    "var('x'",
    "config(",
    "materialized='view'",
    "if ",
    "endif",
    "for i in range(99999999)",
    "endfor",
    "|upper",
    "~",
    "loop.index",
    "macro m()",
    "endmacro",
    "m()",
    "set x = ",
    "x",
    "none",
    "1/0",
    "[1,2][5]",
    "'a' * 99999999",
    "select ",
    "1 as a",
    "\n",
    "is_incremental()",
    "this",
    "env_var('HOME')",
    "run_query('select 1')",
    "caller()",
    "{{ ref('stg_orders') }}",
    "dbt_utils.",
    "adapter.",
    "__class__",
    "self._TemplateReference__context",
];

#[test]
fn random_templates_never_panic() {
    let p = TempProject::example();
    let mut rng = ChaCha8Rng::seed_from_u64(25);
    let inputs: Vec<String> = (0..cases(200)).map(|_| pieces(&mut rng, JINJA_PIECES, 14)).collect();
    let model = p.path().join("models/marts/fuzzed.sql");
    no_panics("templates", inputs, |text| {
        std::fs::write(&model, text).unwrap();
        load_and_compile(p.path());
    });
}

/// The harness itself fails on a panicking input (so a green run means
/// no input panicked, not that panics went unseen).
#[test]
#[should_panic(expected = "1 of 2 inputs panicked")]
fn the_harness_reports_a_panicking_input() {
    no_panics("harness", ["ok".to_string(), "boom".to_string()], |text| assert_ne!(text, "boom"));
}
