//! `--engine ballista` on Ballista's in-process cluster (its scheduler and
//! an executor inside the wh process): the whole example warehouse equals
//! the local engine's, table by table and row by row, over a full build
//! and an incremental one; a dbt project calling wh's DuckDB functions
//! runs there as locally; a failing model fails as it does locally; what
//! the executors cannot run is refused before anything is built.

use crate::common::*;

/// Builds the example on both engines from `vars`, then compares every
/// table; returns the cluster build's stderr.
fn build_both(local: &TempProject, cluster: &TempProject, vars: &str) -> String {
    assert_exit(&local.wh(&["build", "--vars", vars]), 0);
    let out = cluster.wh(&["build", "--vars", vars, "--engine", "ballista"]);
    assert_exit(&out, 0);
    let files = tables(&local.path().join("warehouse"));
    assert_eq!(files.len(), 32);
    assert_eq!(tables(&cluster.path().join("warehouse")), files);
    for f in &files {
        let (mut a, mut b) = (local.rows(f), cluster.rows(f));
        if f == "marts/rfm_segment_changes.parquet" {
            // `changed_at` is the time of the build that saw the change.
            for row in a.iter_mut().chain(b.iter_mut()) {
                row.pop();
            }
        }
        assert_eq!(a.len(), b.len(), "{f}: row counts differ");
        for (i, (ra, rb)) in a.iter().zip(&b).enumerate() {
            assert!(same_row(ra, rb), "{f} row {i} differs between the local engine and Ballista:\n{ra:?}\n{rb:?}");
        }
        assert_eq!(columns(&local.schema(f)), columns(&cluster.schema(f)), "{f}");
        let (la, lb) = (local.schema(f), cluster.schema(f));
        let types = |s: &datafusion::arrow::datatypes::Schema| {
            s.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>()
        };
        assert_eq!(types(&la), types(&lb), "{f}: column types differ");
    }
    // Snapshots: the same rows but for the build times they record.
    for snap in ["snapshots/snp_customers.parquet", "snapshots/snp_customer_rfm.parquet"] {
        let (_, a) = read_batches(&local.path().join("warehouse").join(snap));
        let (_, b) = read_batches(&cluster.path().join("warehouse").join(snap));
        let rows = |bs: &[datafusion::arrow::array::RecordBatch]| bs.iter().map(|b| b.num_rows()).sum::<usize>();
        assert_eq!(rows(&a), rows(&b), "{snap}");
    }
    // What the executors read instead of wh's memory is cleaned up.
    assert!(!cluster.path().join("warehouse/_wh/scratch").exists());
    stderr(&out)
}

/// Rows are equal, but for the last bits of floating-point sums, whose
/// order of addition differs between one process and several executors
/// (2096.13 and 2096.1299999999997).
fn same_row(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x == y
                || match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                    _ => false,
                }
        })
}

fn statuses(p: &TempProject) -> Vec<(String, String)> {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let mut out: Vec<(String, String)> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["unique_id"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn the_example_on_an_in_process_cluster_equals_the_local_build() {
    let local = TempProject::example();
    let cluster = TempProject::example();
    let err = build_both(&local, &cluster, &golden_vars());
    assert!(err.contains("on Ballista"), "{err}");
    // The same models and assertions ran, with the same outcomes.
    assert_eq!(statuses(&local), statuses(&cluster));
    assert!(statuses(&cluster).iter().filter(|(id, _)| id.starts_with("test.")).count() > 20);

    // A second day of data: the incremental facts merge their new rows
    // (held in memory locally, written for the executors on Ballista) and
    // the snapshots record changes.
    let raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(raw.path(), 0.05, 11).unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let err = build_both(&local, &cluster, &vars);
    assert!(err.lines().any(|l| l.contains("fct_orders") && l.contains("incremental") && l.contains(" new")), "{err}");
    assert_eq!(statuses(&local), statuses(&cluster));
}

#[test]
fn a_failing_model_fails_on_ballista_as_it_does_locally() {
    let broken = "select order_id, customer_id, order_date, total_amount, 0 as item_lines, 0 as units,\n\
                  cast(arrow_cast('x', 'Utf8') as double) as items_amount\nfrom {{ ref('stg_orders') }}\n";
    let mut outcomes = Vec::new();
    for engine in ["local", "ballista"] {
        let p = TempProject::example();
        let args = ["build", "--vars", &golden_vars(), "--engine", engine];
        assert_exit(&p.wh(&args), 0);
        let before = std::fs::read(p.path().join("warehouse/star/fct_orders.parquet")).unwrap();
        p.write("models/star/fct_orders.sql", broken);
        let out = p.wh(&args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("model `fct_orders` (models/star/fct_orders.sql) failed"), "{engine}: {err}");
        assert!(err.contains("Cannot cast string 'x'"), "{engine}: {err}");
        // The published version stays, whole and readable.
        assert_eq!(std::fs::read(p.path().join("warehouse/star/fct_orders.parquet")).unwrap(), before);
        outcomes.push(statuses(&p));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let skipped = outcomes[1].iter().filter(|(_, s)| s == "skipped").count();
    assert!(skipped >= 4, "{:?}", outcomes[1]);
}

#[test]
fn a_dbt_project_calling_duckdb_functions_runs_on_ballista_as_it_does_locally() {
    // date_diff, dayname, count_if, arg_max, strftime...: wh's functions,
    // which wh's executors (in-process here) decode plans with.
    let mut built = Vec::new();
    for engine in ["local", "ballista"] {
        let p = TempProject::empty();
        copy(&repo().join("tests/fixtures/dbt/duckdb_sql"), p.path());
        assert_exit(&p.wh(&["build", "--engine", engine]), 0);
        let files = tables(&p.path().join("warehouse"));
        // Rows as sets: group-bys without an `order by` come back in any order.
        let sorted = |mut rows: Vec<Vec<String>>| {
            rows.sort();
            rows
        };
        let rows: Vec<_> = files.iter().map(|f| (f.clone(), sorted(p.rows(f)))).collect();
        built.push(rows);
    }
    let names: Vec<&str> = built[1].iter().map(|(f, _)| f.as_str()).collect();
    assert!(names.contains(&"duckdb_aggregates.parquet") && names.contains(&"date_functions.parquet"), "{names:?}");
    assert_eq!(built[0], built[1]);
}

#[test]
fn what_ballista_cannot_run_is_refused_before_the_build_starts() {
    // A Delta table, and the models reading it.
    let p = TempProject::fixture("what_ballista_cannot_run_is_refused_before_the_build_starts");
    // And 24 identity rounds: 12 per query, deeper than Ballista decodes.
    let vars = golden_vars().replace('}', ", cdp_rounds: 24}");
    let out = p.wh(&["build", "--vars", &vars, "--engine", "ballista"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("orders_delta: writes a Delta table"), "{err}");
    assert!(err.contains("reads_delta: reads the Delta table `orders_delta`"), "{err}");
    // Plans nested deeper than Ballista's scheduler decodes.
    assert!(err.contains("cdp_strong_labels: its plan is"), "{err}");
    assert!(err.contains("cdp_strong_components: its plan is"), "{err}");
    assert!(!p.path().join("warehouse/star").exists(), "a model was built");

    // --memory-limit is the local engine's, and a scheduler needs Ballista.
    let out = p.wh(&["build", "--engine", "ballista", "--memory-limit", "1GB"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--memory-limit bounds the local engine"), "{}", stderr(&out));
    let out = p.wh(&["build", "--scheduler", "df://localhost:50050"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("a scheduler is given, but the engine is `local`"), "{}", stderr(&out));
    let out = p.wh(&["build", "--engine", "ballista", "--scheduler", "localhost:50050"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("write it as df://host:port"), "{}", stderr(&out));
    let out = p.wh(&["build", "--engine", "ballista", "--job-timeout", "soon"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("job timeout `soon` is not a duration"), "{}", stderr(&out));
    // A scheduler that is not there stops the build before any work.
    let out = p.wh(&[
        "build",
        "--vars",
        &golden_vars(),
        "--engine",
        "ballista",
        "--scheduler",
        "df://127.0.0.1:9",
        "--exclude",
        "orders_delta",
        "reads_delta",
        "tag:cdp",
    ]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Ballista scheduler at http://127.0.0.1:9"), "{err}");
    assert!(err.contains("hint: start the scheduler"), "{err}");
    assert!(!p.path().join("warehouse/star").exists(), "a model was built");
}

#[test]
fn a_query_past_the_job_timeout_fails_its_model_and_publishes_nothing() {
    let p = TempProject::example();
    let vars = golden_vars();
    assert_exit(&p.wh(&["build", "--vars", &vars, "--select", "+stg_orders"]), 0);
    let published = p.path().join("warehouse/staging/stg_orders.parquet");
    let before = std::fs::read(&published).unwrap();
    // No job on a cluster finishes within a millisecond: the first one,
    // the source's own assertions, fails, and the model with it.
    let args = ["build", "--vars", &vars, "--select", "stg_orders", "--full-refresh", "--engine", "ballista"];
    let out = p.wh(&[&args[..], &["--job-timeout", "1ms"]].concat());
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("1 of 1 ERROR stg_orders"), "{err}");
    assert!(err.contains("did not finish within the job timeout of 1ms on the Ballista cluster"), "{err}");
    assert_eq!(std::fs::read(&published).unwrap(), before, "the published table changed");
    assert!(!p.path().join("warehouse/_wh/scratch").exists(), "scratch files left behind");
    // With room to run, the same build succeeds.
    assert_exit(&p.wh(&[&args[..], &["--job-timeout", "5m"]].concat()), 0);
}
