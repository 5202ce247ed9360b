//! The CLI's output as reviewed snapshots (`tests/it/snapshots/`): help
//! texts, listings and a build's report. A changed line is a diff to
//! review and accept (`INSTA_UPDATE=always cargo test`), not a grep to
//! loosen.

use crate::common::*;

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        // Durations and run ids vary run to run.
        filters => vec![
            (r"\d+(\.\d+)?m?s\b", "[time]"),
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]"),
        ],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn help_texts() {
    let p = TempProject::empty();
    for (name, args) in [("help", vec!["--help"]), ("help_build", vec!["build", "--help"])] {
        let out = p.wh(&args);
        assert_exit(&out, 0);
        snapshot(name, &stdout(&out));
    }
}

#[test]
fn listing_the_example_project() {
    let p = TempProject::example();
    let out = p.wh(&["ls", "--select", "+customer_order_summary"]);
    assert_exit(&out, 0);
    snapshot("ls_customer_order_summary", &p.report(&out));
}

#[test]
fn build_report_of_the_golden_example() {
    let p = TempProject::example();
    // One thread: models finish in DAG order, so the lines are stable.
    let args = ["build", "--threads", "1", "--vars", &golden_vars(), "--select", "+customer_order_summary"];
    let out = p.wh(&args);
    assert_exit(&out, 0);
    snapshot("build_golden", &p.report(&out));
}
