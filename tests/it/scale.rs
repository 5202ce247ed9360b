//! Builds under a memory limit, progress output, and sizes on the command line.

use crate::common::*;

#[test]
fn a_build_under_a_small_memory_limit_spills_and_writes_the_same_tables() {
    let raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(raw.path(), 0.3, 11).unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let free = TempProject::example();
    let limited = TempProject::example();
    // The shop's tables (the customer data platform's identity rounds hold
    // more than a 64 MB share at once: not part of this test).
    let shop = ["--exclude", "tag:cdp"];
    assert_exit(&free.wh(&[&["build", "--vars", &vars][..], &shop].concat()), 0);
    let out =
        limited.wh(&[&["build", "--vars", &vars, "--memory-limit", "64MB", "--threads", "2"][..], &shop].concat());
    assert_exit(&out, 0);
    let log = stderr(&out);
    // A share of 64 MB does not hold the largest sorts: they spill, and the
    // run says how much.
    assert!(log.contains("(spilled "), "{log}");
    assert!(log.contains("spilled to disk under the 64.0 MB memory limit"), "{log}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(limited.path().join("target/run_results.json")).unwrap())
            .unwrap();
    let spilled: u64 = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["adapter_response"]["spilled_bytes"].as_u64())
        .sum();
    assert!(spilled > 0);
    let files = tables(&free.path().join("warehouse"));
    assert_eq!(files, tables(&limited.path().join("warehouse")));
    assert_eq!(files.len(), 18);
    for f in files {
        let a = free.rows(&f);
        let b = limited.rows(&f);
        assert_eq!(a.len(), b.len(), "{f}");
        // The same rows in the same order: every model sorts its output
        // (floating-point sums may differ in the last bits only).
        for (x, y) in a.iter().zip(&b) {
            for (u, v) in x.iter().zip(y) {
                match (u.parse::<f64>(), v.parse::<f64>()) {
                    (Ok(p), Ok(q)) => assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{f}: {u} vs {v}"),
                    _ => assert_eq!(u, v, "{f}"),
                }
            }
        }
    }
}

#[test]
fn progress_is_plain_lines_off_a_terminal_and_json_objects_on_request() {
    let project = TempProject::example();
    let vars = golden_vars();
    let out = project.wh(&["build", "--vars", &vars]);
    assert_exit(&out, 0);
    let log = stderr(&out);
    // Not a terminal: no progress bar, one line per model.
    assert!(!log.contains('\r') && !log.contains("\u{1b}["), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains(" of 34 OK ")).count(), 34, "{log}");

    let out = project.wh(&["build", "--full-refresh", "--vars", &vars, "--log-format", "json"]);
    assert_exit(&out, 0);
    let events: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "model_finished").collect();
    assert_eq!(finished.len(), 34);
    let customers = finished.iter().find(|e| e["model"] == "dim_customers").unwrap();
    assert_eq!(customers["status"], "ok");
    assert_eq!(customers["total"], 34);
    assert!(customers["rows"].as_u64().unwrap() > 0);
    assert!(customers["ts"].as_str().unwrap().ends_with('Z'));
    assert!(events
        .iter()
        .any(|e| e["event"] == "log" && e["message"].as_str().is_some_and(|m| m.starts_with("Finished in"))));

    let out = project.wh(&["build", "--full-refresh", "--vars", &vars, "--quiet"]);
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains(" OK "));
}

#[test]
fn sizes_parse_with_units_and_a_bad_one_is_a_usage_error() {
    use wh::commands::parse_size;
    assert_eq!(parse_size("1GB"), Some(1_000_000_000));
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("1.5 GiB"), Some(3 << 29));
    assert_eq!(parse_size("2048"), Some(2048));
    assert_eq!(parse_size("4mb"), Some(4_000_000));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size("0"), None);
    let project = TempProject::example();
    let out = project.wh(&["build", "--vars", &golden_vars(), "--memory-limit", "1 gallon"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--memory-limit `1 gallon` is not a size"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: give bytes with a unit"), "{}", stderr(&out));
    // Far too little memory: the models fail (exit 1) with a hint.
    let out = project.wh(&["build", "--vars", &golden_vars(), "--memory-limit", "1KB"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("hint: raise --memory-limit"), "{}", stderr(&out));
    let out = project.wh(&["build", "--vars", &golden_vars(), "--memory-limit", "1 gallon"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--memory-limit `1 gallon` is not a size"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: give bytes with a unit"), "{}", stderr(&out));
}

/// Writes a project of `n` models: each model past the first refs the one
/// before it and calls a project macro; every 7th reads a var.
fn large_project(n: usize) -> TempProject {
    let p = TempProject::empty();
    p.write("wh_project.yml", "name: large\nvars:\n  cap: 41\n");
    p.write("macros/plus.sql", "{% macro plus(col, k) %}{{ col }} + {{ k }}{% endmacro %}\n");
    p.write("data/t.csv", "id\n1\n");
    p.write("sources.yml", "sources:\n  - name: raw\n    tables:\n      - {name: t, location: data/t.csv}\n");
    let mut yml = String::from("models:\n");
    for i in 0..n {
        let from =
            if i == 0 { "{{ source('raw', 't') }}".to_string() } else { format!("{{{{ ref('m{:05}') }}}}", i - 1) };
        let filter = if i % 7 == 0 { " where id < {{ var('cap') }}" } else { "" };
        p.write(
            &format!("models/m{i:05}.sql"),
            &format!("select {{{{ plus('id', {i}) }}}} as id from {from}{filter}\n"),
        );
        yml.push_str(&format!("  - name: m{i:05}\n    columns:\n      - name: id\n        tests: [not_null]\n"));
    }
    p.write("models/schema.yml", &yml);
    p
}

#[test]
fn a_large_project_renders_on_every_core_as_on_one_thread() {
    // Above 2,000 models per core a project renders in runs of names on
    // every core, each in an environment of its own (4,200 models: two runs
    // on a 2-core machine, m00000-m02099 and m02100-m04199).
    let n = 4_200;
    let p = large_project(n);
    assert_exit(&p.wh(&["compile", "--quiet"]), 0);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/manifest.json")).unwrap()).unwrap();
    let nodes = manifest["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 2 * n);
    for i in [0, 1, 7, 2_099, 2_100, 2_101, 4_193, 4_199] {
        let node = &nodes[&format!("model.large.m{i:05}")];
        let from = if i == 0 { "\"raw\".\"t\"".to_string() } else { format!("\"m{:05}\"", i - 1) };
        let filter = if i % 7 == 0 { " where id < 41" } else { "" };
        assert_eq!(node["compiled_code"], format!("select id + {i} as id from {from}{filter}"), "m{i:05}");
        let parent = if i == 0 { "source.large.raw.t".to_string() } else { format!("model.large.m{:05}", i - 1) };
        assert_eq!(node["depends_on"]["nodes"], serde_json::json!([parent]), "m{i:05}");
        let test = &nodes[&format!("test.large.not_null_m{i:05}_id")];
        assert_eq!(test["attached_node"], format!("model.large.m{i:05}"));
    }
    let sql = std::fs::read_to_string(p.path().join("target/compiled/models/m02101.sql")).unwrap();
    assert_eq!(sql, "select id + 2101 as id from \"m02100\"\n");

    // An error in the second run is reported with its file and line; with
    // one in each run, the first by name, as on one thread.
    p.write("models/m03000.sql", "select 1 as id\n\n{{ ref('nope') }}\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("unknown model `nope` in ref()"), "{}", stderr(&out));
    assert!(stderr(&out).contains("models/m03000.sql:3"), "{}", stderr(&out));
    p.write("models/m01000.sql", "select {{ var('missing') }} as id\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("models/m01000.sql:1"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("m03000"), "{}", stderr(&out));
}
