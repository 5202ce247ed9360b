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
