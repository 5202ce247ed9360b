//! Building: publishing, failure isolation, selection, concurrency,
//! materializations, artifacts and the other commands.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};

#[test]
fn failed_model_keeps_previous_file_and_skips_descendants() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let before = std::fs::read(p.path().join("warehouse/star/fct_orders.parquet")).unwrap();
    let rfm_before = std::fs::read(p.path().join("warehouse/marts/mart_customer_rfm.parquet")).unwrap();

    // Break fct_orders at run time (planning succeeds, execution fails).
    p.write(
        "models/star/fct_orders.sql",
        "select order_id, customer_id, order_date, total_amount, 0 as item_lines, 0 as units,\n\
         cast(arrow_cast('x', 'Utf8') as double) as items_amount\nfrom {{ ref('stg_orders') }}\n",
    );
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("model `fct_orders` (models/star/fct_orders.sql) failed"), "{err}");
    for skipped in ["mart_customer_rfm", "customer_order_summary", "pareto_top20", "customer_running_spend"] {
        assert!(err.lines().any(|l| l.contains("SKIP") && l.contains(skipped)), "{skipped} not skipped:\n{err}");
    }
    // The previous versions are untouched and readable.
    assert_eq!(std::fs::read(p.path().join("warehouse/star/fct_orders.parquet")).unwrap(), before);
    assert_eq!(std::fs::read(p.path().join("warehouse/marts/mart_customer_rfm.parquet")).unwrap(), rfm_before);
    assert_eq!(p.rows("star/fct_orders.parquet").len(), 3);
    // Independent branches went on: unchanged, so reused as they are.
    assert!(err.lines().any(|l| l.contains("REUSE") && l.contains("units_by_category")), "{err}");
    assert!(err.lines().any(|l| l.contains("REUSE") && l.contains("dim_date")), "{err}");
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&p.path().join("warehouse")).into_iter().filter(|f| f.contains(".wh-tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // run_results records each status.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let status = |id: &str| {
        results["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == id).unwrap()["status"].clone()
    };
    assert_eq!(status("model.shop.fct_orders"), "error");
    // OpenLineage: a FAIL event with the error, and no events for skipped models.
    let events = p.lineage_events();
    let fail = events.iter().find(|e| e["job"]["name"] == "shop.fct_orders" && e["eventType"] == "FAIL").unwrap();
    assert!(fail["run"]["facets"]["errorMessage"]["message"].as_str().unwrap().contains("fct_orders"));
    assert!(events.iter().all(|e| e["job"]["name"] != "shop.mart_customer_rfm"));
    assert_eq!(events.last().unwrap()["eventType"], "FAIL");
    assert_eq!(status("model.shop.mart_customer_rfm"), "skipped");
    assert_eq!(status("model.shop.dim_date"), "success");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn leftover_temporary_files_are_removed_by_the_next_run() {
    let p = TempProject::example();
    p.write("warehouse/marts/.mart_customer_rfm.parquet.wh-tmp-12345", "half a file");
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("Removed 1 temporary file"), "{}", stderr(&out));
    assert!(!p.path().join("warehouse/marts/.mart_customer_rfm.parquet.wh-tmp-12345").exists());
}

#[test]
fn selection_operators() {
    let p = TempProject::example();
    let ls = |sel: &[&str]| -> Vec<String> {
        let mut args = vec!["ls"];
        args.extend_from_slice(sel);
        let out = p.wh(&args);
        assert_exit(&out, 0);
        stdout(&out).lines().map(str::to_string).collect()
    };
    assert_eq!(ls(&["--select", "fct_orders"]), ["fct_orders"]);
    assert_eq!(ls(&["--select", "+fct_orders"]), ["fct_orders", "stg_order_items", "stg_orders"]);
    assert_eq!(
        ls(&["--select", "dim_customers+"]),
        [
            "customer_order_summary",
            "customer_running_spend",
            "dim_customers",
            "mart_customer_rfm",
            "rfm_segment_changes",
            "snp_customer_rfm",
            "snp_customers"
        ]
    );
    assert_eq!(
        ls(&["--select", "+customer_order_summary+"]),
        ["customer_order_summary", "dim_customers", "fct_orders", "stg_customers", "stg_order_items", "stg_orders"]
    );
    assert_eq!(ls(&["--select", "1+fct_orders"]), ["fct_orders", "stg_order_items", "stg_orders"]);
    let marts = ["customer_order_summary", "mart_customer_rfm", "rfm_segment_changes"];
    assert_eq!(ls(&["--select", "tag:marts"]), marts);
    assert_eq!(ls(&["--select", "path:models/marts"]), marts);
    assert_eq!(ls(&["--select", "config.materialized:snapshot"]), ["snp_customer_rfm", "snp_customers"]);
    assert_eq!(ls(&["--select", "path:snapshots"]), ["snp_customer_rfm", "snp_customers"]);
    assert_eq!(
        ls(&["--select", "stg_*", "--exclude", "stg_orders", "tag:cdp"]),
        ["stg_customers", "stg_order_items", "stg_products"]
    );
    assert_eq!(ls(&["--select", "tag:star,fct_*"]), ["fct_order_items", "fct_orders"]);
    assert_eq!(
        ls(&["--select", "source:shop.products+"]),
        [
            "daily_category_revenue",
            "daily_revenue_forecast",
            "dim_products",
            "products_never_sold",
            "stg_products",
            "units_by_category"
        ]
    );
    assert_eq!(ls(&["--select", "dim_date", "pareto_top20"]), ["dim_date", "pareto_top20"]);
    assert_eq!(ls(&["--output", "path", "--select", "dim_date"]), ["models/star/dim_date.sql"]);
}

#[test]
fn selected_build_reads_unselected_parents_from_the_warehouse() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let out = p.wh(&["build", "--vars", &golden_vars(), "--select", "customer_order_summary"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("Running 1 of 34 models"), "{}", stderr(&out));
    assert_eq!(p.rows("marts/customer_order_summary.parquet").len(), 2);

    let fresh = TempProject::example();
    let out = fresh.wh(&["build", "--vars", &golden_vars(), "--select", "customer_order_summary"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("is not selected and has not been built"), "{}", stderr(&out));
}

#[test]
fn concurrent_build_equals_single_threaded_build() {
    let raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(raw.path(), 0.05, 7).unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let one = TempProject::example();
    let many = TempProject::example();
    assert_exit(&one.wh(&["build", "--vars", &vars, "--threads", "1"]), 0);
    assert_exit(&many.wh(&["build", "--vars", &vars, "--threads", "8"]), 0);
    // Snapshots record the time of the build that wrote them: the rest must
    // be the same bytes.
    let files = tables(&one.path().join("warehouse"));
    assert_eq!(files.len(), 32);
    for f in files {
        let a = std::fs::read(one.path().join("warehouse").join(&f)).unwrap();
        let b = std::fs::read(many.path().join("warehouse").join(&f)).unwrap();
        assert!(a == b, "{f} differs between --threads 1 and --threads 8");
        // No product goes unsold in this data, and a first build changes no segment.
        let may_be_empty = f.contains("never_sold") || f.contains("rfm_segment_changes");
        assert!(!one.rows(&f).is_empty() || may_be_empty, "{f} is empty");
    }
}

#[test]
fn dirty_raw_data_is_cleaned() {
    let raw = tempfile::tempdir().unwrap();
    let r = raw.path();
    let s = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let i = |v: &[Option<i64>]| Arc::new(Int64Array::from(v.to_vec())) as ArrayRef;
    let f = |v: &[f64]| Arc::new(Float64Array::from(v.to_vec())) as ArrayRef;
    wh::datagen::write_table(
        &r.join("customers.parquet"),
        vec![
            ("id", i(&[Some(1), Some(1), Some(2), Some(3)])),
            ("name", s(&[" Juan Pérez ", " Juan Pérez ", "Laura Gómez", "Nadie  "])),
            ("email", s(&[" JUAN@Email.com ", " JUAN@Email.com ", "laura@email.com", "NADIE@X.COM "])),
            ("created_at", s(&["2023-01-15", "2023-01-15", "2023-02-10", "2023-03-01"])),
        ],
    )
    .unwrap();
    wh::datagen::write_table(
        &r.join("products.parquet"),
        vec![
            ("id", i(&[Some(10), Some(11), Some(12), Some(12), Some(13), Some(14)])),
            ("name", s(&["Laptop", "Mouse", "Silla Oficina", "Silla Oficina", "Lámpara", " Cojín "])),
            ("category", s(&["Electrónica", " Electrónica ", "Muebles", "Muebles", "Hogar", "Hogar"])),
        ],
    )
    .unwrap();
    wh::datagen::write_table(
        &r.join("orders.parquet"),
        vec![
            ("id", i(&[Some(1), Some(1), Some(2), Some(3), Some(4)])),
            ("customer_id", i(&[Some(1), Some(1), Some(2), Some(1), None])),
            ("order_date", s(&["2023-04-10", "2023-04-10", "2023-05-20", "2023-06-05", "2023-06-10"])),
            ("total_amount", f(&[150.0, 150.0, 200.0, 75.0, 999.0])),
        ],
    )
    .unwrap();
    wh::datagen::write_table(
        &r.join("order_items.parquet"),
        vec![
            ("id", i(&[Some(1), Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)])),
            ("order_id", i(&[Some(1), Some(1), Some(1), Some(2), Some(2), Some(2), Some(4)])),
            ("product_id", i(&[Some(10), Some(10), Some(11), Some(12), Some(13), Some(11), Some(13)])),
            ("quantity", f(&[2.0, 2.0, 1.0, 4.0, 0.0, -1.0, 3.0])),
            ("unit_price", f(&[50.0, 50.0, 50.0, 50.0, 30.0, 50.0, 30.0])),
        ],
    )
    .unwrap();
    let p = TempProject::example();
    let vars = format!("{{raw_root: '{}'}}", r.display());
    assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    assert_eq!(
        p.rows("staging/stg_customers.parquet"),
        table(&[
            &["1", "Juan Pérez", "juan@email.com", "2023-01-15"],
            &["2", "Laura Gómez", "laura@email.com", "2023-02-10"],
            &["3", "Nadie", "nadie@x.com", "2023-03-01"],
        ])
    );
    assert_eq!(p.rows("staging/stg_orders.parquet").len(), 3, "duplicate and NULL-customer orders dropped");
    let lines: Vec<String> = p.rows("staging/stg_order_items.parquet").iter().map(|r| r[0].clone()).collect();
    assert_eq!(lines, ["1", "2", "3", "6"], "duplicates and quantity <= 0 dropped");
    assert_eq!(p.rows("star/fct_order_items.parquet").len(), 3, "lines of dropped orders are not facts");
    assert_eq!(
        p.rows("star/fct_orders.parquet"),
        table(&[
            &["1", "1", "2023-04-10", "150.0", "2", "3", "150.0"],
            &["2", "2", "2023-05-20", "200.0", "1", "4", "200.0"],
            &["3", "1", "2023-06-05", "75.0", "0", "0", "0.0"],
        ])
    );
    assert_eq!(p.rows("star/dim_date.parquet").len(), 57, "dates of valid orders only");
    assert_eq!(
        p.rows("marts/customer_order_summary.parquet"),
        table(&[&["1", "Juan Pérez", "2", "225.0"], &["2", "Laura Gómez", "1", "200.0"], &["3", "Nadie", "0", "0.0"]])
    );
    assert_eq!(p.rows("marts/mart_customer_rfm.parquet").len(), 2);
    assert_eq!(
        p.rows("analyses/units_by_category.parquet"),
        table(&[&["Muebles", "4"], &["Electrónica", "3"], &["Hogar", "3"]])
    );
    assert_eq!(p.rows("analyses/products_never_sold.parquet"), table(&[&["14", "Cojín", "Hogar"]]));
    assert_eq!(p.rows("star/dim_products.parquet").len(), 5);
}

#[test]
fn views_ephemerals_macros_show_and_query() {
    let p = TempProject::fixture("views_ephemerals_macros_show_and_query");
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    assert_eq!(p.rows("out.parquet"), table(&[&["2", "50"]]));
    assert!(!p.path().join("warehouse/helpers/scaled.parquet").exists(), "ephemeral models are not written");
    assert!(!p.path().join("warehouse/v_big.parquet").exists(), "views are not written");

    let out = p.wh(&["query", "select n, scaled from v_big order by n", "--format", "csv"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "n,scaled\n2,20\n3,30\n");
    let out = p.wh(&["show", "out"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("| 2   | 50    |"), "{}", stdout(&out));
    let out = p.wh(&["show", "nope"]);
    assert_exit(&out, 2);

    let compiled = std::fs::read_to_string(p.path().join("target/compiled/models/helpers/scaled.sql")).unwrap();
    assert_eq!(compiled, "select n, (n * 10) as scaled from \"raw\".\"nums\"\n");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["nodes"]["model.demo.v_big"]["config"]["materialized"], "view");
    assert_eq!(manifest["nodes"]["model.demo.out"]["depends_on"]["nodes"], serde_json::json!(["model.demo.v_big"]));
    assert_eq!(manifest["parent_map"]["model.demo.scaled"], serde_json::json!(["source.demo.raw.nums"]));
    assert_eq!(manifest["child_map"]["model.demo.scaled"], serde_json::json!(["model.demo.v_big"]));
}

#[test]
fn compile_reads_no_data_and_artifacts_are_deterministic() {
    let p = TempProject::example();
    // No raw data exists at this location: compile must not need it.
    let out = p.wh(&["compile", "--vars", "{raw_root: /nonexistent}"]);
    assert_exit(&out, 0);
    let sql = std::fs::read_to_string(p.path().join("target/compiled/models/staging/stg_orders.sql")).unwrap();
    assert!(sql.contains("from \"shop\".\"orders\""), "{sql}");
    // Timestamps and ids aside: the metadata, and where a model renders
    // run_started_at (rfm_segment_changes), its value.
    let strip = |path: &std::path::Path| {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let started = v["metadata"]["invocation_started_at"].as_str().unwrap().replace('T', " ").replace('Z', "");
        v["metadata"] = serde_json::Value::Null;
        v.to_string().replace(&started, "RUN_STARTED_AT")
    };
    let first = strip(&p.path().join("target/manifest.json"));
    assert_exit(&p.wh(&["compile", "--vars", "{raw_root: /nonexistent}"]), 0);
    assert_eq!(first, strip(&p.path().join("target/manifest.json")));
}

#[test]
fn init_scaffolds_a_project_that_builds() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("new_proj");
    let out = wh_command().arg("init").arg(&dir).output().unwrap();
    assert_exit(&out, 0);
    let out = wh_command().current_dir(&dir).arg("build").output().unwrap();
    assert_exit(&out, 0);
    let rows = read_rows(&dir.join("warehouse/marts/people_by_city.parquet"));
    assert_eq!(rows, table(&[&["Helsinki", "1"], &["London", "2"], &["New York", "1"]]));
    let again = wh_command().arg("init").arg(&dir).output().unwrap();
    assert_exit(&again, 2);
}

/// Where a kill -9 landed, read off the warehouse it left: in the
/// publishing step (its journal is there), while models ran (their staged
/// files are), or outside both.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Phase {
    Building,
    Publishing,
    Outside,
}

fn phase_of(warehouse: &std::path::Path) -> Phase {
    if warehouse.join("_wh/journal.json").exists() {
        Phase::Publishing
    } else if walk(warehouse).iter().any(|f| f.contains(".wh-tmp-")) {
        Phase::Building
    } else {
        Phase::Outside
    }
}

#[test]
fn killed_build_leaves_every_published_file_whole() {
    use rand::{Rng, SeedableRng};
    let old_raw = tempfile::tempdir().unwrap();
    let new_raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(old_raw.path(), 3.0, 1).unwrap();
    wh::datagen::generate(new_raw.path(), 3.0, 2).unwrap();
    let old_vars = format!("{{raw_root: '{}'}}", old_raw.path().display());
    let new_vars = format!("{{raw_root: '{}'}}", new_raw.path().display());

    let p = TempProject::example();
    // A view: `wh run --select v_probe` takes the lock and builds no table.
    p.write("models/v_probe.sql", "{{ config(materialized='view') }}\nselect 1 as x\n");
    assert_exit(&p.wh(&["build", "--vars", &old_vars]), 0);
    let reference = TempProject::example();
    assert_exit(&reference.wh(&["build", "--vars", &new_vars]), 0);
    // Snapshots and the segment feed hold the history of the builds that
    // wrote them, so they match no single reference: they must stay readable.
    let warehouse = p.path().join("warehouse");
    let (files, history): (Vec<String>, Vec<String>) = walk(&warehouse)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.contains("/_wh/"))
        .map(|f| f[warehouse.to_string_lossy().len() + 1..].to_string())
        .partition(|f| !f.starts_with("snapshots/") && !f.contains("rfm_segment_changes"));
    assert_eq!(history.len(), 3);
    // Equal inputs give byte-identical files: a table is compared by its
    // checksum.
    let sums = |project: &TempProject| -> Vec<String> {
        files.iter().map(|f| checksum(&project.path().join("warehouse").join(f))).collect()
    };
    let (old, new) = (sums(&p), sums(&reference));

    // Each publish of the step is slowed (a sleep after it), so that a kill
    // can land inside it; half of the 4 kills wait for the step to begin,
    // half land anywhere in the build. The moments are random (seeded).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let bin = wh_bin();
    let mut phases = Vec::new();
    // Each build goes from the version the warehouse holds to the other
    // one (--full-refresh: incremental models rebuild, so each table is
    // one version or the other).
    let versions = [(&old_vars, &old), (&new_vars, &new)];
    let mut current = 0;
    for i in 0..4 {
        let (from, to) = (versions[current].1, versions[1 - current]);
        let mut child = std::process::Command::new(&bin)
            .current_dir(p.path())
            .env("FAILPOINTS", "commit.after_publish=sleep(30)")
            .args(["build", "--quiet", "--full-refresh", "--vars", to.0])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        if i % 2 == 0 {
            while !warehouse.join("_wh/journal.json").exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..400)));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(rng.random_range(50..4000)));
        }
        child.kill().unwrap(); // SIGKILL
        let killed = child.wait().unwrap().code().is_none();
        let phase = if killed { phase_of(&warehouse) } else { Phase::Outside };
        phases.push(phase);
        for (i, sum) in sums(&p).iter().enumerate() {
            assert!(sum == &from[i] || sum == &to.1[i], "{} is neither version after kill -9", files[i]);
        }
        for f in &history {
            let _ = p.rows(f);
        }
        // The next command completes a publishing step that began, so no
        // reader ever sees the two builds mixed once it has run.
        assert_exit(&p.wh(&["run", "--select", "v_probe", "--vars", to.0]), 0);
        let now = sums(&p);
        let mixed = &now != from && &now != to.1;
        assert!(!mixed, "the builds are mixed after a kill in {phase:?} and the next command");
        match phase {
            Phase::Building => assert!(&now == from, "a kill while models ran published something"),
            Phase::Publishing => assert!(&now == to.1, "the next command did not complete the publishing step"),
            Phase::Outside => {}
        }
        if &now == to.1 {
            current = 1 - current;
        }
    }
    eprintln!("kill -9 landed in: {phases:?}");
    assert!(phases.contains(&Phase::Publishing), "no kill landed in the publishing step: {phases:?}");
    assert!(phases.contains(&Phase::Building), "no kill landed while models ran: {phases:?}");
    let out = p.wh(&["build", "--full-refresh", "--vars", &new_vars]);
    assert_exit(&out, 0);
    assert!(walk(&warehouse).iter().all(|f| !f.contains(".wh-tmp-") && !f.contains("_wh/journal")));
    assert_eq!(sums(&p), new);
}

#[test]
fn sources_read_directories_and_globs() {
    let p = TempProject::fixture("sources_read_directories_and_globs");
    assert_exit(&p.wh(&["build"]), 0);
    assert_eq!(p.rows("totals.parquet"), table(&[&["dir", "3", "60"], &["glob", "2", "50"], &["semi", "1", "90"]]));
}

#[test]
fn deep_view_chains_fail_with_a_hint_instead_of_exhausting_memory() {
    let p = TempProject::fixture("deep_view_chains_fail_with_a_hint_instead_of_exhausting_memory");
    for i in 1..=24 {
        p.write(
            &format!("models/v{i:02}.sql"),
            &format!(
                "select a.id, a.v + b.v as v from {{{{ ref('v{j:02}') }}}} as a join {{{{ ref('v{j:02}') }}}} as b on a.id = b.id\n",
                j = i - 1
            ),
        );
    }
    p.write("models/out/result.sql", "select * from {{ ref('v24') }}\n");
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("once its views are inlined"), "{err}");
    assert!(err.contains("hint: materialize some of the upstream views as tables"), "{err}");
}

#[test]
fn files_bi_tools_cannot_open_fail_the_model_and_csv_exports_are_written() {
    let p = TempProject::example();
    // A nested column: refused, naming the column; nothing is published.
    p.write(
        "models/marts/nested_mart.sql",
        "select customer_id, make_array(customer_id, 1) as ids from {{ ref('dim_customers') }}",
    );
    // A CSV export beside the Parquet file.
    p.write(
        "models/marts/segment_counts.sql",
        "{{ config(export='csv') }}\nselect rfm_segment, count(*) as customers from {{ ref('mart_customer_rfm') }} group by 1 order by 1",
    );
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("would not open in every BI tool: column `ids"), "{err}");
    assert!(err.contains("is nested"), "{err}");
    assert!(!p.path().join("warehouse/marts/nested_mart.parquet").exists());
    let rows = p.rows("marts/segment_counts.parquet");
    let csv = std::fs::read_to_string(p.path().join("warehouse/marts/segment_counts.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("rfm_segment,customers"));
    let csv_rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(csv_rows, rows);
    assert!(!rows.is_empty());
}

fn this_host() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[test]
fn a_second_build_is_refused_while_the_warehouse_is_locked() {
    let p = TempProject::example();
    let lock = p.path().join("warehouse/_wh/lock");
    let vars = golden_vars();
    // The first build holds the lock for 3 s before it builds anything
    // (a failpoint's sleep), so the second certainly overlaps it.
    let mut first = wh_command()
        .current_dir(p.path())
        .env("FAILPOINTS", "lock.taken=sleep(3000)")
        .args(["build", "--quiet", "--vars", &vars])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lock.exists() {
        assert!(std::time::Instant::now() < deadline, "the first build never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let holder: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let second = p.wh(&["build", "--vars", &vars]);
    assert!(lock.exists(), "the second build ran after the first had ended: no overlap");
    let first = first.wait().unwrap();
    assert_eq!(first.code(), Some(0));
    assert_exit(&second, 2);
    let err = stderr(&second);
    let run = holder["run_id"].as_str().unwrap();
    assert!(err.contains(&format!("is locked by run {run} (`wh build` by")), "{err}");
    assert!(err.contains(&format!("process {}", holder["pid"])), "{err}");
    // The first build finished normally and freed the lock.
    assert!(!lock.exists());
    assert!(!p.rows("marts/customer_order_summary.parquet").is_empty());
}

#[test]
fn two_builds_started_at_once_never_corrupt_the_warehouse() {
    let vars = golden_vars();
    let p = TempProject::example();
    let bin = wh_bin();
    // Whichever takes the lock holds it 3 s before building: the other,
    // started at the same moment, meets it held.
    let start = || {
        std::process::Command::new(&bin)
            .current_dir(p.path())
            .env("FAILPOINTS", "lock.taken=sleep(3000)")
            .args(["build", "--vars", &vars])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(2)], "{}\n{}", stderr(&a), stderr(&b));
    let refused = if a.status.code() == Some(2) { &a } else { &b };
    assert!(stderr(refused).contains("is locked by run"), "{}", stderr(refused));
    assert!(!p.path().join("warehouse/_wh/lock").exists());
    // Every table equals what one build alone writes.
    let alone = TempProject::example();
    assert_exit(&alone.wh(&["build", "--vars", &vars]), 0);
    for rel in ["staging/stg_orders.parquet", "star/fct_orders.parquet", "marts/mart_customer_rfm.parquet"] {
        assert_eq!(p.rows(rel), alone.rows(rel), "{rel}");
    }
    assert_exit(&p.wh(&["test", "--vars", &vars]), 0);
}

#[test]
fn a_lock_left_by_a_dead_process_is_recovered_and_a_live_one_is_respected() {
    let p = TempProject::example();
    let lock = "warehouse/_wh/lock";
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let holder = |pid: u32, run: &str| {
        serde_json::json!({"run_id": run, "command": "build", "user": "someone", "host": this_host(), "pid": pid,
                           "started_at": "2026-01-01T00:00:00Z"})
        .to_string()
    };
    p.write(lock, &holder(dead_pid, "old-run"));
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("Recovered the warehouse lock left by run old-run"), "{}", stderr(&out));
    assert!(!p.path().join(lock).exists());
    // A live process (this test) holds it: refused, and the lock is kept.
    p.write(lock, &holder(std::process::id(), "live-run"));
    let out = p.wh(&["run", "--vars", &golden_vars()]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("is locked by run live-run"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: wait for that run to finish"), "{}", stderr(&out));
    assert!(p.path().join(lock).exists());
}

/// Returns the models a build reported with `status` (OK, REUSE, ...).
fn reported(out: &std::process::Output, status: &str) -> std::collections::BTreeSet<String> {
    stderr(out)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip(3);
            (words.next() == Some(status)).then(|| words.next().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn unchanged_models_are_reused_and_a_change_rebuilds_exactly_its_descendants() {
    let raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(raw.path(), 0.05, 11).unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let p = TempProject::example();
    let first = p.wh(&["build", "--vars", &vars]);
    assert_exit(&first, 0);
    let all = reported(&first, "OK");
    assert_eq!(all.len(), 34);
    // rfm_segment_changes lists the changes of the build that runs it: it
    // is never up to date.
    let mut stable = all.clone();
    stable.remove("rfm_segment_changes");
    let mtime = |rel: &str| std::fs::metadata(p.path().join("warehouse").join(rel)).unwrap().modified().unwrap();
    let before = mtime("marts/customer_order_summary.parquet");

    // Nothing changed: nothing is rebuilt, nothing is rewritten.
    let again = p.wh(&["build", "--vars", &vars]);
    assert_exit(&again, 0);
    assert_eq!(reported(&again, "REUSE"), stable);
    assert!(stderr(&again).contains("33 of 34 selected models are up to date"), "{}", stderr(&again));
    assert_eq!(mtime("marts/customer_order_summary.parquet"), before);

    // A comment and new line breaks are not a change.
    let sql = std::fs::read_to_string(p.path().join("models/staging/stg_orders.sql")).unwrap();
    let reformatted =
        sql.replace("select distinct order_id, customer_id,", "select distinct\n  order_id,  customer_id,");
    assert_ne!(reformatted, sql);
    p.write("models/staging/stg_orders.sql", &format!("-- reviewed\n{reformatted}  /* end */\n"));
    assert_eq!(reported(&p.wh(&["build", "--vars", &vars]), "REUSE"), stable);

    // A real change rebuilds exactly the model and its descendants.
    p.write(
        "models/staging/stg_orders.sql",
        &sql.replacen("select", "select /*+ v2 */ distinct", 1).replace("distinct distinct", "distinct"),
    );
    let changed = p.wh(&["build", "--vars", &vars]);
    assert_exit(&changed, 0);
    let ls = p.wh(&["ls", "--select", "stg_orders+"]);
    let expected: std::collections::BTreeSet<String> = stdout(&ls).lines().map(str::to_string).collect();
    assert!(expected.len() > 3 && expected.len() < 18, "{expected:?}");
    assert_eq!(reported(&changed, "OK"), expected, "{}", stderr(&changed));
    assert_eq!(reported(&changed, "REUSE"), all.difference(&expected).cloned().collect());

    // New source data: the readers of that source and their descendants.
    let customers = raw.path().join("customers.parquet");
    let bytes = std::fs::read(&customers).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&customers, bytes).unwrap();
    let fresh = p.wh(&["build", "--vars", &vars]);
    // fct_orders is audited by a relationships test that reads dim_customers:
    // it is rebuilt and audited again too.
    let readers: std::collections::BTreeSet<String> =
        stdout(&p.wh(&["ls", "--select", "source:shop.customers+ fct_orders+"])).lines().map(str::to_string).collect();
    assert_eq!(reported(&fresh, "OK"), readers, "{}", stderr(&fresh));

    // --full-refresh rebuilds everything.
    assert_eq!(reported(&p.wh(&["build", "--full-refresh", "--vars", &vars]), "OK"), all);
    // A build only reuses versions whose assertions ran: not after `wh run`.
    assert_exit(&p.wh(&["run", "--full-refresh", "--vars", &vars]), 0);
    assert_eq!(reported(&p.wh(&["build", "--vars", &vars]), "OK"), all);
}

#[test]
fn state_and_result_selectors_and_retry() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let ls = |sel: &str| -> std::collections::BTreeSet<String> {
        let out = p.wh(&["ls", "--select", sel]);
        assert_exit(&out, 0);
        stdout(&out).lines().map(str::to_string).collect()
    };
    // A warned assertion selects the model it checks (the attached node
    // that run_results keeps in adapter_response).
    assert_eq!(ls("result:warn"), ["fct_orders".to_string()].into());
    // Nothing changed since the build's manifest.
    assert!(ls("state:modified").is_empty());
    let sql = std::fs::read_to_string(p.path().join("models/staging/stg_products.sql")).unwrap();
    p.write("models/staging/stg_products.sql", &format!("{sql}\n-- a comment is not a change\n"));
    assert!(ls("state:modified").is_empty());
    p.write(
        "models/staging/stg_products.sql",
        &sql.replace("order by product_id, product_name, category", "order by product_id, category, product_name"),
    );
    p.write("models/marts/new_mart.sql", "select 1 as one");
    assert_eq!(ls("state:new"), ["new_mart".to_string()].into());
    let mut expected = ls("stg_products+");
    expected.insert("new_mart".into());
    assert_eq!(ls("state:modified+"), expected);
    std::fs::remove_file(p.path().join("models/marts/new_mart.sql")).unwrap();
    p.write("models/staging/stg_products.sql", &sql);

    // A failed model: result:error selects it, wh retry reruns it and what it skipped.
    let fct = std::fs::read_to_string(p.path().join("models/star/fct_orders.sql")).unwrap();
    p.write("models/star/fct_orders.sql", "select cast(arrow_cast('x', 'Utf8') as double) as boom");
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 1);
    assert_eq!(ls("result:error"), ["fct_orders".to_string()].into());
    let skipped = ls("result:skipped");
    assert!(skipped.contains("mart_customer_rfm") && skipped.contains("customer_order_summary"), "{skipped:?}");
    p.write("models/star/fct_orders.sql", &fct);
    let retried = p.wh(&["retry", "--vars", &golden_vars()]);
    assert_exit(&retried, 0);
    let mut rerun = skipped.clone();
    rerun.insert("fct_orders".into());
    assert_eq!(reported(&retried, "OK"), rerun, "{}", stderr(&retried));
    let again = p.wh(&["retry", "--vars", &golden_vars()]);
    assert_exit(&again, 0);
    assert!(stderr(&again).contains("Nothing to retry"), "{}", stderr(&again));
}

#[test]
fn failures_and_warnings_alert_a_webhook_and_a_command() {
    use std::io::{BufRead, BufReader, Read, Write};
    // A loopback HTTP server that records each POSTed body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
            tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
        }
    });
    let p = TempProject::example();
    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write(
        "wh_project.yml",
        &format!(
            "{project}\nalerts:\n  on: [failure, warning]\n  webhook_env: TEST_ALERT_URL\n  command: \"cat > alert.json\"\n"
        ),
    );
    let build = || {
        wh_command()
            .current_dir(p.path())
            .env("TEST_ALERT_URL", format!("http://127.0.0.1:{port}/hook"))
            .args(["build", "--vars", &golden_vars()])
            .output()
            .unwrap()
    };
    // The golden data warns (order 3's reconciliation): a warning alert.
    let out = build();
    assert_exit(&out, 0);
    let sent = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(sent["status"], "warning");
    assert_eq!(sent["models"]["built"], 34);
    assert!(sent["problems"].as_array().unwrap().iter().any(|p| p["assertion"] == "order_total_matches_lines"));
    let by_command: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("alert.json")).unwrap()).unwrap();
    assert_eq!(by_command, sent);

    // A failed model: a failure alert naming it; the exit code stays 1.
    p.write("models/star/fct_orders.sql", "select cast(arrow_cast('x', 'Utf8') as double) as boom");
    let out = build();
    assert_exit(&out, 1);
    let sent = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(sent["status"], "failure");
    assert_eq!(sent["failed_models"][0]["name"], "fct_orders");
    assert!(sent["models"]["skipped"].as_u64().unwrap() >= 4);
}

#[test]
fn source_freshness_warns_errors_and_can_skip_stale_readers() {
    let p = TempProject::example();
    let sources = std::fs::read_to_string(p.path().join("sources.yml")).unwrap();
    let with = |warn: u32, error: u32| {
        sources.replace(
            "        loaded_at_field: order_date\n",
            &format!(
                "        loaded_at_field: order_date\n        freshness:\n          \
                 warn_after: {{count: {warn}, period: day}}\n          error_after: {{count: {error}, period: day}}\n"
            ),
        )
    };
    // Bad thresholds and a missing loaded_at_field are project errors, located.
    p.write("sources.yml", &with(1, 2).replace("period: day}\n", "period: days}\n"));
    let out = p.wh(&["source", "freshness", "--vars", &golden_vars()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown variant `days`") && stderr(&out).contains("--> sources.yml:"),
        "{}",
        stderr(&out)
    );
    p.write("sources.yml", &with(1, 2).replace("        loaded_at_field: order_date\n", ""));
    let out = p.wh(&["source", "freshness", "--vars", &golden_vars()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("source `shop.orders` declares `freshness` but no `loaded_at_field`"), "{err}");
    assert!(err.contains("--> sources.yml:") && err.contains("hint: add `loaded_at_field: COLUMN`"), "{err}");
    // The golden orders are from 2023: years old.
    p.write("sources.yml", &with(100_000, 200_000));
    let out = p.wh(&["source", "freshness", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("PASS") && stderr(&out).contains("shop.orders"), "{}", stderr(&out));

    p.write("sources.yml", &with(30, 100_000));
    let out = p.wh(&["source", "freshness", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("WARN"), "{}", stderr(&out));
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/sources.json")).unwrap()).unwrap();
    let r = &artifact["results"][0];
    assert_eq!((r["unique_id"].as_str(), r["status"].as_str()), (Some("source.shop.shop.orders"), Some("warn")));
    assert!(r["max_loaded_at_time_ago_in_s"].as_f64().unwrap() > 365.0 * 86400.0);

    p.write("sources.yml", &with(10, 30));
    assert_exit(&p.wh(&["source", "freshness", "--vars", &golden_vars()]), 1);
    // A build warns by default and goes on.
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("error: source `shop.orders` freshness error"), "{}", stderr(&out));
    // With on-stale-source: skip, the readers of the stale source do not run.
    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write("wh_project.yml", &format!("{project}\non-stale-source: skip\n"));
    let out = p.wh(&["build", "--full-refresh", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("source `shop.orders` is stale"), "{err}");
    assert!(reported(&out, "ERROR").contains("stg_orders"), "{err}");
    assert!(reported(&out, "SKIP").contains("fct_orders"), "{err}");
    assert!(reported(&out, "OK").contains("stg_customers"), "{err}");
}
