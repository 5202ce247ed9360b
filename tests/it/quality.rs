//! Assertions and write-audit-publish: warnings publish, failures keep the
//! previous version, history is append-only, contracts, `wh test`.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};

fn history_files(p: &TempProject) -> Vec<std::path::PathBuf> {
    let dir = p.path().join("warehouse/_wh/test_results");
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Rows of the history, as maps from column name to display value.
fn history_rows(path: &std::path::Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let (schema, _) = read_batches(path);
    let names = columns(&schema);
    read_rows(path).into_iter().map(|r| names.iter().cloned().zip(r).collect()).collect()
}

#[test]
fn golden_order_3_warning_is_reported_recorded_and_sampled() {
    let p = TempProject::example();
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    let warn = err.lines().find(|l| l.contains("order_total_matches_lines")).unwrap_or_else(|| panic!("{err}"));
    assert!(warn.starts_with("WARN:") && warn.contains("1 failing of 3 rows"), "{warn}");
    // Warnings publish.
    assert_eq!(p.rows("star/fct_orders.parquet").len(), 3);

    let files = history_files(&p);
    assert_eq!(files.len(), 1);
    let rows = history_rows(&files[0]);
    let rec = rows.iter().find(|r| r["test_name"] == "order_total_matches_lines").unwrap();
    assert_eq!(rec["status"], "warn");
    assert_eq!(rec["failing_rows"], "1");
    assert_eq!(rec["rows_scanned"], "3");
    assert_eq!(rec["severity"], "warn");
    assert_eq!(rec["assertion"], "expression_is_true");
    assert_eq!(rec["subject"], "fct_orders");
    assert_eq!(rec["owner"], "analytics-engineering");
    // The sample holds exactly order 3.
    let sample = p.path().join("warehouse").join(&rec["sample_path"]);
    let sample_rows = read_rows(&sample);
    assert_eq!(sample_rows, table(&[&["3", "1", "2023-06-05", "75.0", "0", "0", "0.0"]]));
    // Every other assertion passed on the golden data.
    let others: Vec<_> = rows.iter().filter(|r| r["status"] != "pass").map(|r| r["test_name"].clone()).collect();
    assert_eq!(others, ["order_total_matches_lines", "source_recency_shop_orders"], "{rows:?}");
}

#[test]
fn history_grows_by_one_row_per_assertion_and_never_changes() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let first = history_files(&p);
    let first_bytes = std::fs::read(&first[0]).unwrap();
    let per_run = history_rows(&first[0]).len();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let tests = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["adapter_response"]["resource_type"] == "test")
        .count();
    assert_eq!(per_run, tests);
    assert!(per_run >= 30, "{per_run}");

    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let second = history_files(&p);
    assert_eq!(second.len(), 2);
    assert_eq!(std::fs::read(&first[0]).unwrap(), first_bytes, "older history never changes");
    assert_eq!(history_rows(&second[1]).len(), per_run);

    // wh query reads the whole history as one table.
    let out = p.wh(&[
        "query",
        "select count(*) as n, count(distinct run_id) as runs from wh_test_results",
        "--format",
        "csv",
        "--vars",
        &golden_vars(),
    ]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), format!("n,runs\n{},2\n", 2 * per_run));
}

fn write_dirty_customers(dir: &std::path::Path) {
    // The golden data, but customer 1 appears twice with different names.
    crate::common::copy(&repo().join("tests/fixtures/golden/raw"), dir);
    let s = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    wh::datagen::write_table(
        &dir.join("customers.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef),
            ("name", s(&["Juan Pérez", "Juan P.", "Laura Gómez"])),
            ("email", s(&["juan@email.com", "juan@email.com", "laura@email.com"])),
            ("created_at", s(&["2023-01-15", "2023-01-15", "2023-02-10"])),
        ],
    )
    .unwrap();
}

#[test]
fn error_assertion_keeps_previous_version_and_skips_descendants() {
    let p = TempProject::example();
    // Make customer id uniqueness in staging an error.
    let yml = std::fs::read_to_string(p.path().join("models/staging/_staging.yml")).unwrap();
    let yml = yml.replacen("- unique: {severity: warn}", "- unique: {severity: error}", 1);
    p.write("models/staging/_staging.yml", &yml);
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let before = std::fs::read(p.path().join("warehouse/staging/stg_customers.parquet")).unwrap();
    let mart_before = std::fs::read(p.path().join("warehouse/marts/customer_order_summary.parquet")).unwrap();

    let raw = tempfile::tempdir().unwrap();
    write_dirty_customers(raw.path());
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let out = p.wh(&["build", "--vars", &vars]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("not published: assertion `unique_stg_customers_customer_id`"), "{err}");
    assert!(err.contains("the previous version stays published"), "{err}");
    for skipped in ["dim_customers", "customer_order_summary", "mart_customer_rfm", "customer_running_spend"] {
        assert!(err.lines().any(|l| l.contains("SKIP") && l.contains(skipped)), "{skipped}:\n{err}");
    }
    assert!(err.lines().any(|l| l.contains("OK") && l.contains("fct_orders")), "{err}");
    assert_eq!(std::fs::read(p.path().join("warehouse/staging/stg_customers.parquet")).unwrap(), before);
    assert_eq!(std::fs::read(p.path().join("warehouse/marts/customer_order_summary.parquet")).unwrap(), mart_before);
    assert!(!walk_has_tmp(&p.path().join("warehouse")));

    // The failing rows are sampled to readable Parquet.
    let rows = history_rows(history_files(&p).last().unwrap());
    let rec = rows.iter().find(|r| r["test_name"] == "unique_stg_customers_customer_id").unwrap();
    assert_eq!(rec["status"], "fail");
    assert_eq!(rec["failing_rows"], "1");
    let sample = read_rows(&p.path().join("warehouse").join(&rec["sample_path"]));
    assert_eq!(sample, table(&[&["1", "2"]]));

    // OpenLineage: the relation's test job fails, with the assertion's result.
    let events = p.lineage_events();
    let end = events
        .iter()
        .find(|e| e["job"]["name"] == "shop.stg_customers.test" && e["eventType"] != "START")
        .expect("a test job for stg_customers");
    assert_eq!(end["eventType"], "FAIL");
    let assertions = end["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"].as_array().unwrap();
    let unique = assertions.iter().find(|a| a["name"] == "unique_stg_customers_customer_id").unwrap();
    assert_eq!(
        (&unique["success"], &unique["severity"], &unique["actual"]),
        (&false.into(), &"error".into(), &"1".into())
    );
}

fn walk_has_tmp(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let e = e.unwrap();
        if e.path().is_dir() {
            walk_has_tmp(&e.path())
        } else {
            e.file_name().to_string_lossy().contains(".wh-tmp-")
        }
    })
}

#[test]
fn contract_mismatch_prints_a_diff_and_publishes_nothing() {
    let p = TempProject::fixture("contract_mismatch_prints_a_diff_and_publishes_nothing");
    // pareto_top20 is also described in models/analyses: keep one description.
    let analyses = std::fs::read_to_string(p.path().join("models/analyses/_analyses.yml")).unwrap();
    let start = analyses.find("  - name: pareto_top20").unwrap();
    p.write("models/analyses/_analyses.yml", &analyses[..start]);
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("contract of `pareto_top20` is not met (nothing was published)"), "{err}");
    assert!(err.contains("~ top_customers"), "{err}");
    assert!(err.contains("expected int"), "{err}");
    assert!(err.contains("actual bigint"), "{err}");
    assert!(err.contains("- share"), "{err}");
    assert!(err.contains("+ top_share"), "{err}");
    assert!(err.contains("--> models/marts/_contract.yml:3"), "{err}");
    assert!(err.contains("hint: declare the columns as the model returns them"), "{err}");
    assert!(!p.path().join("warehouse/analyses/pareto_top20.parquet").exists());

    // Fixing the declaration publishes it.
    let fixed = std::fs::read_to_string(p.path().join("models/marts/_contract.yml"))
        .unwrap()
        .replace("data_type: int}", "data_type: bigint}")
        .replace("name: share", "name: top_share");
    p.write("models/marts/_contract.yml", &fixed);
    assert_exit(&p.wh(&["build", "--vars", &golden_vars(), "--select", "pareto_top20"]), 0);
    assert_eq!(p.rows("analyses/pareto_top20.parquet").len(), 1);
}

#[test]
fn run_then_test_checks_the_published_warehouse() {
    let p = TempProject::example();
    let out = p.wh(&["run", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("Assertions:"), "wh run runs no assertions");
    let out = p.wh(&["test", "--vars", &golden_vars(), "--select", "fct_orders"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("Assertions: 3 run, 2 passed, 1 warned, 0 failed"), "{err}");

    // Break the published data behind wh's back: wh test catches it.
    let raw = tempfile::tempdir().unwrap();
    write_dirty_customers(raw.path());
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    assert_exit(&p.wh(&["run", "--vars", &vars]), 0);
    let out = p.wh(&["test", "--vars", &vars, "--select", "stg_customers", "--junit", "junit.xml"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("WARN: unique `unique_stg_customers_customer_id`"), "{}", stderr(&out));
    let xml = std::fs::read_to_string(p.path().join("junit.xml")).unwrap();
    assert!(xml.contains("<testsuites name=\"wh\" tests=\"5\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"unique_stg_customers_customer_id\""), "{xml}");
}

#[test]
fn generic_custom_singular_thresholds_and_where() {
    let p = TempProject::fixture("generic_custom_singular_thresholds_and_where");
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    let rows = history_rows(history_files(&p).last().unwrap());
    let status = |name: &str| {
        let r = rows.iter().find(|r| r["test_name"] == name).unwrap_or_else(|| panic!("{name} missing: {rows:?}"));
        (r["status"].clone(), r["failing_rows"].clone(), r["rows_scanned"].clone())
    };
    assert_eq!(status("source_unique_raw_t_id"), ("pass".into(), "0".into(), "5".into()));
    assert_eq!(status("is_even_m_id"), ("warn".into(), "3".into(), "5".into()));
    // where keeps ids 1, 2, 5: two odd of three (66% > 50%).
    assert_eq!(status("even_ids_of_a"), ("warn".into(), "2".into(), "3".into()));
    assert_eq!(status("accepted_values_m_kind"), ("pass".into(), "0".into(), "5".into()));
    // 1 of 5 negative is 20%: over warn_if, under error_if.
    assert_eq!(status("accepted_range_m_amount"), ("warn".into(), "1".into(), "5".into()));
    assert_eq!(status("matches_regex_m_email"), ("warn".into(), "1".into(), "5".into()));
    assert_eq!(status("row_count_m"), ("pass".into(), "0".into(), "5".into()));
    assert_eq!(status("not_empty_m"), ("pass".into(), "0".into(), "5".into()));
    assert_eq!(status("no_big_amounts"), ("warn".into(), "1".into(), "5".into()));

    // An unknown test kind is a project error with a hint.
    p.write("models/m2.sql", "select 1 as id\n");
    p.write(
        "models/m2.yml",
        "version: 2\nmodels:\n  - name: m2\n    columns:\n      - name: id\n        data_tests: [uniqe]\n",
    );
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("unknown test `uniqe`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("did you mean `unique`?"), "{}", stderr(&out));
}

#[test]
fn failed_source_assertion_blocks_its_readers() {
    let p = TempProject::example();
    let raw = tempfile::tempdir().unwrap();
    crate::common::copy(&repo().join("tests/fixtures/golden/raw"), raw.path());
    // An empty orders feed breaks `row_count: {min: 1}` on the source.
    wh::datagen::write_table(
        &raw.path().join("orders.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef),
            ("customer_id", Arc::new(Int64Array::from(Vec::<i64>::new()))),
            ("order_date", Arc::new(StringArray::from(Vec::<&str>::new()))),
            ("total_amount", Arc::new(Float64Array::from(Vec::<f64>::new()))),
        ],
    )
    .unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let out = p.wh(&["build", "--vars", &vars]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("source `shop.orders` failed assertion `source_row_count_shop_orders`"), "{err}");
    assert!(err.lines().any(|l| l.contains("ERROR") && l.contains("stg_orders")), "{err}");
    assert!(err.lines().any(|l| l.contains("OK") && l.contains("stg_customers")), "{err}");
    assert!(!p.path().join("warehouse/staging/stg_orders.parquet").exists());
}

#[test]
fn check_reports_missing_owners_and_levels_are_configurable() {
    let p = TempProject::example();
    let out = p.wh(&["check"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("0 error(s), 0 warning(s)"), "{}", stderr(&out));

    let marts = std::fs::read_to_string(p.path().join("models/marts/_marts.yml")).unwrap();
    let marts = marts.replacen(
        "meta: {owner: analytics-engineering, steward: customer-insights}\n    data_tests:",
        "meta: {owner: '', steward: customer-insights}\n    data_tests:",
        1,
    );
    p.write("models/marts/_marts.yml", &marts);
    let out = p.wh(&["check"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("error[public-model-owner]: public model `customer_order_summary` has no owner"), "{err}");
    assert!(err.contains("--> models/marts/_marts.yml:"), "{err}");

    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write("wh_project.yml", &format!("{project}\nchecks:\n  public-model-owner: warn\n"));
    let out = p.wh(&["check"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("warning[public-model-owner]"), "{}", stderr(&out));

    p.write("wh_project.yml", &format!("{project}\nchecks:\n  public-model-ownr: warn\n"));
    let out = p.wh(&["check"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("did you mean `public-model-owner`?"), "{}", stderr(&out));
}

#[test]
fn report_shows_pass_rates_and_latest_failures_with_samples() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let out = p.wh(&["report", "--vars", &golden_vars(), "--runs", "5"]);
    assert_exit(&out, 0);
    let html = std::fs::read_to_string(p.path().join("target/governance_report.html")).unwrap();
    assert!(html.contains("<h2>Owner: analytics-engineering</h2>"), "{html}");
    assert!(html.contains("<h2>Owner: data-engineering</h2>"), "{html}");
    assert!(html.contains("2 run(s) in the history"), "{html}");
    // The reconciliation warned in both runs: 0 of 2 passed.
    let row = html.split("<tr>").find(|r| r.contains("order_total_matches_lines")).unwrap();
    assert!(row.contains("0/2 (0%)") && row.contains("class=\"warn\""), "{row}");
    let unique = html.split("<tr>").find(|r| r.contains("unique_dim_customers_customer_id")).unwrap();
    assert!(unique.contains("2/2 (100%)"), "{unique}");
    // The latest failures show their sampled rows: order 3.
    let failures = &html[html.find("Latest failures").unwrap()..];
    assert!(failures.contains("<td>3</td><td>1</td><td>2023-06-05</td><td>75.0</td>"), "{failures}");
}

#[test]
fn older_history_files_stay_readable_after_a_schema_change() {
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::datatypes::Schema;
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    // Rewrite the first file as an "older version" without two columns.
    let first = history_files(&p)[0].clone();
    let (schema, batches) = read_batches(&first);
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !["sample_path", "message"].contains(&schema.field(*i).name().as_str()))
        .collect();
    let old_schema =
        std::sync::Arc::new(Schema::new(keep.iter().map(|i| schema.field(*i).clone()).collect::<Vec<_>>()));
    let old: Vec<RecordBatch> = batches
        .iter()
        .map(|b| RecordBatch::try_new(old_schema.clone(), keep.iter().map(|i| b.column(*i).clone()).collect()).unwrap())
        .collect();
    let file = std::fs::File::create(&first).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, old_schema.clone(), None).unwrap();
    for b in &old {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let out = p.wh(&[
        "query",
        "select count(distinct run_id) as runs, count(*) - count(message) as old_rows_without_message from wh_test_results",
        "--format",
        "csv",
        "--vars",
        &golden_vars(),
    ]);
    assert_exit(&out, 0);
    let n = old[0].num_rows() + old.iter().skip(1).map(|b| b.num_rows()).sum::<usize>();
    assert_eq!(stdout(&out), format!("runs,old_rows_without_message\n2,{n}\n"));
}

#[test]
fn volume_checks_compare_row_counts_with_recent_builds() {
    let p = TempProject::example();
    let star = std::fs::read_to_string(p.path().join("models/star/_star.yml")).unwrap();
    p.write(
        "models/star/_star.yml",
        &star.replacen(
            "    data_tests:\n      - expression_is_true:\n          name: order_total_matches_lines",
            "    data_tests:\n      - volume: {max_drop_pct: 30, runs: 3, severity: warn}\n      \
             - expression_is_true:\n          name: order_total_matches_lines",
            1,
        ),
    );
    let big = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    wh::datagen::generate(big.path(), 0.2, 3).unwrap();
    wh::datagen::generate(small.path(), 0.05, 3).unwrap();
    let vars = |d: &tempfile::TempDir| format!("{{raw_root: '{}'}}", d.path().display());
    let volume = |out: &std::process::Output| {
        let rows = history_rows(history_files(&p).last().unwrap());
        let rec = rows.iter().find(|r| r["test_name"] == "volume_fct_orders").cloned();
        (rec.unwrap_or_else(|| panic!("{}", stderr(out))), stderr(out))
    };
    // The first build has nothing to compare with: pass.
    let out = p.wh(&["build", "--vars", &vars(&big)]);
    assert_exit(&out, 0);
    let (rec, _) = volume(&out);
    assert_eq!(rec["status"], "pass");
    let big_rows = p.rows("star/fct_orders.parquet").len();
    // A quarter of the data: a drop of about 75% warns, in the history.
    let out = p.wh(&["build", "--vars", &vars(&small)]);
    assert_exit(&out, 0);
    let (rec, err) = volume(&out);
    assert_eq!(rec["status"], "warn", "{err}");
    assert_eq!(rec["failing_rows"], "1");
    assert!(p.rows("star/fct_orders.parquet").len() * 2 < big_rows);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("warehouse/_wh/state.json")).unwrap()).unwrap();
    let counts: Vec<u64> =
        state["models"]["fct_orders"]["rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(counts, vec![big_rows as u64, p.rows("star/fct_orders.parquet").len() as u64]);
    // wh test fills the baseline in too.
    assert_exit(&p.wh(&["test", "--vars", &vars(&small)]), 0);
}
