//! Bad input gets a clear error: file, line, hint, exit code 2 (project) or
//! 1 (a model failed). Each message is a reviewed snapshot
//! (`tests/it/snapshots/`): a changed message shows up as a diff to accept
//! (`INSTA_UPDATE=always cargo test`, then review the `.snap` files).

use crate::common::*;

/// Runs `wh args` in fixture `name` and snapshots what it printed; the
/// snapshot is named after the fixture.
fn snapshot_run(name: &str, p: &TempProject, args: &[&str]) -> std::process::Output {
    let out = p.wh(args);
    insta::with_settings!({
        // Durations in the build summary vary run to run.
        filters => vec![(r"\d+(\.\d+)?m?s\b", "[time]")],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, p.report(&out));
    });
    out
}

#[test]
fn cycle_prints_its_path() {
    let p = TempProject::fixture("cycle");
    let out = snapshot_run("cycle", &p, &["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("models/a.sql:1:22"), "the caret is on the ref's name: {}", stderr(&out));
}

#[test]
fn unknown_ref_names_file_line_and_hint() {
    let p = TempProject::fixture("unknown_ref");
    assert_exit(&snapshot_run("unknown_ref", &p, &["compile"]), 2);
}

#[test]
fn unknown_source_has_hint() {
    let p = TempProject::fixture("unknown_source");
    assert_exit(&snapshot_run("unknown_source", &p, &["compile"]), 2);
}

#[test]
fn sql_error_names_the_model_file() {
    let p = TempProject::fixture("bad_sql");
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("model `bad_sql` (models/marts/bad_sql.sql) failed"), "{err}");
    assert!(err.contains("customer_idd"), "{err}");
    assert!(err.contains("target/compiled/models/marts/bad_sql.sql:1"), "{err}");
    // Everything else still built.
    assert_eq!(p.rows("marts/customer_order_summary.parquet").len(), 2);
}

#[test]
fn missing_source_file_fails_its_models() {
    let p = TempProject::example();
    let out = p.wh(&["build", "--vars", "{raw_root: /nonexistent/raw}"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("source `shop.customers`: no file or directory at `/nonexistent/raw/customers.parquet`"),
        "{err}"
    );
    assert!(err.contains("sources.yml:"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(err.contains("SKIP"), "{err}");
}

#[test]
fn malformed_yaml_reports_its_line() {
    let p = TempProject::fixture("malformed_yaml");
    assert_exit(&snapshot_run("malformed_yaml", &p, &["compile"]), 2);
}

#[test]
fn unknown_config_key_is_an_error_with_hint() {
    let p = TempProject::fixture("config_key_typo");
    assert_exit(&snapshot_run("config_key_typo", &p, &["compile"]), 2);
}

#[test]
fn unknown_folder_config_in_project_file() {
    let p = TempProject::example();
    let text = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write("wh_project.yml", &text.replace("+tags: [marts]", "+tagz: [marts]"));
    assert_exit(&snapshot_run("folder_config_typo", &p, &["compile"]), 2);
}

#[test]
fn unknown_key_in_sql_config_call() {
    let p = TempProject::fixture("sql_config_typo");
    assert_exit(&snapshot_run("sql_config_typo", &p, &["compile"]), 2);
}

#[test]
fn missing_required_var() {
    let p = TempProject::fixture("missing_var");
    assert_exit(&snapshot_run("missing_var", &p, &["compile"]), 2);
}

#[test]
fn unknown_target_and_bad_selector_and_no_project() {
    let p = TempProject::example();
    assert_exit(&snapshot_run("unknown_target", &p, &["compile", "--target", "prd"]), 2);
    assert_exit(&snapshot_run("unknown_selector", &p, &["ls", "--select", "stg_order"]), 2);
    let empty = TempProject::empty();
    assert_exit(&snapshot_run("no_project", &empty, &["build"]), 2);
    assert_exit(&snapshot_run("vars_not_yaml", &p, &["build", "--vars", "{unclosed"]), 2);
}

#[test]
fn unreadable_previous_manifest_names_its_file() {
    let p = TempProject::fixture("unreadable_previous_manifest_names_its_file");
    assert_exit(&snapshot_run("broken_state", &p, &["ls", "--select", "state:modified"]), 2);
    // Without a state: selector the file is not needed, and not an error.
    assert_exit(&p.wh(&["ls", "--select", "stg_orders"]), 0);
}
