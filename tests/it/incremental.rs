//! Incremental models, snapshots and the segment-changes feed, run by the
//! real binary and checked by reading the published tables back.

use std::path::Path;
use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};

fn s(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}
fn i(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}
fn f(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

#[derive(Clone)]
struct Order<'a>(i64, Option<i64>, &'a str, f64);
struct Line(i64, i64, i64, f64, f64);
struct Customer<'a>(i64, &'a str, &'a str, &'a str);

/// Writes the four raw tables of the example project into `dir`.
fn write_raw(dir: &Path, customers: &[Customer], orders: &[Order], lines: &[Line]) {
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, cols| wh::datagen::write_table(&dir.join(format!("{name}.parquet")), cols).unwrap();
    w(
        "customers",
        vec![
            ("id", i(&customers.iter().map(|c| Some(c.0)).collect::<Vec<_>>())),
            ("name", s(&customers.iter().map(|c| c.1).collect::<Vec<_>>())),
            ("email", s(&customers.iter().map(|c| c.2).collect::<Vec<_>>())),
            ("created_at", s(&customers.iter().map(|c| c.3).collect::<Vec<_>>())),
        ],
    );
    w(
        "products",
        vec![
            ("id", i(&[Some(10), Some(11), Some(12)])),
            ("name", s(&["Laptop", "Mouse", "Silla Oficina"])),
            ("category", s(&["Electrónica", "Electrónica", "Muebles"])),
        ],
    );
    w(
        "orders",
        vec![
            ("id", i(&orders.iter().map(|o| Some(o.0)).collect::<Vec<_>>())),
            ("customer_id", i(&orders.iter().map(|o| o.1).collect::<Vec<_>>())),
            ("order_date", s(&orders.iter().map(|o| o.2).collect::<Vec<_>>())),
            ("total_amount", f(&orders.iter().map(|o| o.3).collect::<Vec<_>>())),
        ],
    );
    w(
        "order_items",
        vec![
            ("id", i(&lines.iter().map(|l| Some(l.0)).collect::<Vec<_>>())),
            ("order_id", i(&lines.iter().map(|l| Some(l.1)).collect::<Vec<_>>())),
            ("product_id", i(&lines.iter().map(|l| Some(l.2)).collect::<Vec<_>>())),
            ("quantity", f(&lines.iter().map(|l| l.3).collect::<Vec<_>>())),
            ("unit_price", f(&lines.iter().map(|l| l.4).collect::<Vec<_>>())),
        ],
    );
}

const CUSTOMERS: &[Customer] = &[
    Customer(1, "Juan Pérez", "juan@email.com", "2023-01-15"),
    Customer(2, "Laura Gómez", "laura@email.com", "2023-02-10"),
    Customer(3, "Ana Ruiz", "ana@email.com", "2023-03-01"),
];

fn vars(dir: &Path) -> String {
    format!("{{raw_root: '{}'}}", dir.display())
}

/// The line a build reported for `model`.
fn line_of(out: &std::process::Output, model: &str) -> String {
    stderr(out).lines().find(|l| l.split_whitespace().nth(4) == Some(model)).unwrap_or_default().to_string()
}

#[test]
fn day_by_day_incremental_builds_equal_one_full_build() {
    let raw = tempfile::tempdir().unwrap();
    let (day1, day2) = (raw.path().join("day1"), raw.path().join("day2"));
    write_raw(
        &day1,
        CUSTOMERS,
        &[
            Order(1, Some(1), "2023-04-10", 150.0),
            Order(2, Some(2), "2023-05-20", 200.0),
            Order(3, Some(1), "2023-06-05", 75.0),
        ],
        &[Line(1, 1, 10, 2.0, 50.0), Line(2, 1, 11, 1.0, 50.0), Line(3, 2, 12, 4.0, 50.0)],
    );
    // Day 2's extract holds everything: order 2 corrected (200 -> 180), a new
    // order 4, order 5 arriving late with an April date, an order without
    // customer (dropped), a first line for day 1's order 3, and a return.
    write_raw(
        &day2,
        CUSTOMERS,
        &[
            Order(1, Some(1), "2023-04-10", 150.0),
            Order(2, Some(2), "2023-05-20", 180.0),
            Order(3, Some(1), "2023-06-05", 75.0),
            Order(4, Some(3), "2023-06-20", 90.0),
            Order(5, Some(2), "2023-04-01", 60.0),
            Order(6, None, "2023-06-21", 10.0),
        ],
        &[
            Line(1, 1, 10, 2.0, 50.0),
            Line(2, 1, 11, 1.0, 50.0),
            Line(3, 2, 12, 4.0, 50.0),
            Line(4, 3, 11, 3.0, 25.0),
            Line(5, 4, 12, 1.0, 90.0),
            Line(6, 5, 10, 1.0, 60.0),
            Line(7, 1, 11, -1.0, 50.0),
        ],
    );
    let daily = TempProject::example();
    assert_exit(&daily.wh(&["build", "--vars", &vars(&day1)]), 0);
    assert_eq!(daily.rows("star/fct_orders.parquet").len(), 3);
    let second = daily.wh(&["build", "--vars", &vars(&day2)]);
    assert_exit(&second, 0);
    // The facts merged only the orders that changed: 2 (corrected), 3 (new
    // line), 4 (new) and 5 (late); for the lines, orders 3, 4 and 5.
    let fct = line_of(&second, "fct_orders");
    assert!(fct.contains("incremental") && fct.contains("5 rows, 4 new"), "{}", stderr(&second));
    let items = line_of(&second, "fct_order_items");
    assert!(items.contains("6 rows, 3 new"), "{}", stderr(&second));

    let full = TempProject::example();
    assert_exit(&full.wh(&["build", "--vars", &vars(&day2)]), 0);
    for rel in ["star/fct_orders.parquet", "star/fct_order_items.parquet", "marts/customer_order_summary.parquet"] {
        assert_eq!(daily.rows(rel), full.rows(rel), "{rel}: day by day differs from one full build");
        assert_eq!(columns(&daily.schema(rel)), columns(&full.schema(rel)));
    }
    assert_eq!(
        daily.rows("star/fct_orders.parquet"),
        table(&[
            &["1", "1", "2023-04-10", "150.0", "2", "3", "150.0"],
            &["2", "2", "2023-05-20", "180.0", "1", "4", "200.0"],
            &["3", "1", "2023-06-05", "75.0", "1", "3", "75.0"],
            &["4", "3", "2023-06-20", "90.0", "1", "1", "90.0"],
            &["5", "2", "2023-04-01", "60.0", "1", "1", "60.0"],
        ])
    );

    // Nothing new: the facts are up to date.
    let again = daily.wh(&["build", "--vars", &vars(&day2)]);
    assert!(line_of(&again, "fct_orders").contains("REUSE"), "{}", stderr(&again));
    // The orders file rewritten with the same rows: staging runs again, the
    // facts find no new rows and keep their published file as it is.
    let fct = daily.path().join("warehouse/star/fct_orders.parquet");
    let modified = || std::fs::metadata(&fct).unwrap().modified().unwrap();
    let before = modified();
    let orders = std::fs::read(day2.join("orders.parquet")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(day2.join("orders.parquet"), orders).unwrap();
    let touched = daily.wh(&["build", "--vars", &vars(&day2)]);
    assert_exit(&touched, 0);
    assert!(line_of(&touched, "stg_orders").contains(" OK "), "{}", stderr(&touched));
    assert!(line_of(&touched, "fct_orders").contains("5 rows, 0 new"), "{}", stderr(&touched));
    assert_eq!(modified(), before);

    // Day 3 takes things away: order 4 loses its customer (no longer a
    // valid order) and order 1's second line turns into a return.
    let day3 = raw.path().join("day3");
    write_raw(
        &day3,
        CUSTOMERS,
        &[
            Order(1, Some(1), "2023-04-10", 150.0),
            Order(2, Some(2), "2023-05-20", 180.0),
            Order(3, Some(1), "2023-06-05", 75.0),
            Order(4, None, "2023-06-20", 90.0),
            Order(5, Some(2), "2023-04-01", 60.0),
        ],
        &[
            Line(1, 1, 10, 2.0, 50.0),
            Line(2, 1, 11, -1.0, 50.0),
            Line(3, 2, 12, 4.0, 50.0),
            Line(4, 3, 11, 3.0, 25.0),
            Line(5, 4, 12, 1.0, 90.0),
            Line(6, 5, 10, 1.0, 60.0),
        ],
    );
    let third = daily.wh(&["build", "--vars", &vars(&day3)]);
    assert_exit(&third, 0);
    // fct_orders: order 1 (changed lines) and a deletion marker for order 4.
    assert!(line_of(&third, "fct_orders").contains("4 rows, 2 new"), "{}", stderr(&third));
    let full3 = TempProject::example();
    assert_exit(&full3.wh(&["build", "--vars", &vars(&day3)]), 0);
    for rel in ["star/fct_orders.parquet", "star/fct_order_items.parquet", "marts/mart_customer_rfm.parquet"] {
        assert_eq!(daily.rows(rel), full3.rows(rel), "{rel}: after deletions");
    }
    assert_eq!(daily.rows("star/fct_order_items.parquet").len(), 4);
    assert!(columns(&daily.schema("star/fct_orders.parquet")).iter().all(|c| c != "_deleted"));

    // --full-refresh rebuilds them from their SQL, with the same rows.
    let refreshed = daily.wh(&["build", "--full-refresh", "--vars", &vars(&day3)]);
    assert_exit(&refreshed, 0);
    assert!(!line_of(&refreshed, "fct_orders").contains("new"), "{}", stderr(&refreshed));
    assert_eq!(daily.rows("star/fct_orders.parquet"), full3.rows("star/fct_orders.parquet"));

    // The incremental SQL is compiled beside the full one.
    assert_exit(&daily.wh(&["compile", "--vars", &vars(&day3)]), 0);
    let incremental =
        std::fs::read_to_string(daily.path().join("target/compiled/models/star/fct_orders.incremental.sql"));
    assert!(incremental.unwrap().contains("full join (select *, true as wh_present from \"fct_orders\")"));
}

/// A project with one CSV source of events and one incremental model.
fn events_project(model: &str) -> TempProject {
    let p = TempProject::fixture("events_project");
    p.write("models/events_inc.sql", model);
    p
}

const EVENTS_MODEL: &str = "{{ config(materialized='incremental', unique_key='id', \
     incremental_strategy=var('strategy'), partition_by=var('partitions', none)) }}\n\
     select id, v, day, loaded from {{ source('raw', 'events') }}\n\
     {% if is_incremental() %}where loaded > (select max(loaded) from {{ this }}){% endif %}\n";

fn write_events(p: &TempProject, rel: &str, rows: &[&str]) -> String {
    p.write(rel, &format!("id,v,day,loaded\n{}\n", rows.join("\n")));
    p.path().join(rel).display().to_string()
}

/// Runs `wh query` with `vars` and returns the CSV lines without header.
fn query(p: &TempProject, vars: &str, sql: &str) -> Vec<String> {
    let out = p.wh(&["query", sql, "--format", "csv", "--vars", vars]);
    assert_exit(&out, 0);
    stdout(&out).lines().skip(1).map(str::to_string).collect()
}

#[test]
fn incremental_strategies_merge_new_rows_into_the_published_table() {
    let batch1 = ["1,a,1,1", "2,b,1,1", "4,d,0,1", "5,e,1,1"];
    // Batch 2 updates 1 and 2 and adds 3; 4 and 5 are not sent again.
    let batch2 = ["1,a2,2,2", "2,b2,1,2", "3,c,2,2"];
    let cases: [(&str, &str, &[&str]); 4] = [
        ("append", "", &["1,a,1,1", "1,a2,2,2", "2,b,1,1", "2,b2,1,2", "3,c,2,2", "4,d,0,1", "5,e,1,1"]),
        ("merge", "", &["1,a2,2,2", "2,b2,1,2", "3,c,2,2", "4,d,0,1", "5,e,1,1"]),
        ("delete+insert", "", &["1,a2,2,2", "2,b2,1,2", "3,c,2,2", "4,d,0,1", "5,e,1,1"]),
        // Partitions 1 and 2 are replaced whole: 5 (day 1, not resent) goes.
        ("insert_overwrite", ", partitions: [day]", &["1,a2,2,2", "2,b2,1,2", "3,c,2,2", "4,d,0,1"]),
    ];
    for (strategy, extra, expected) in cases {
        let p = events_project(EVENTS_MODEL);
        let first = write_events(&p, "raw/events1.csv", &batch1);
        let all: Vec<&str> = batch1.iter().chain(&batch2).copied().collect();
        let second = write_events(&p, "raw/events2.csv", &all);
        let v = |file: &str| format!("{{events: '{file}', strategy: '{strategy}'{extra}}}");
        assert_exit(&p.wh(&["build", "--vars", &v(&first)]), 0);
        let out = p.wh(&["build", "--vars", &v(&second)]);
        assert_exit(&out, 0);
        assert!(line_of(&out, "events_inc").contains(", 3 new"), "{strategy}: {}", stderr(&out));
        assert_eq!(query(&p, &v(&second), "select * from events_inc order by id, loaded"), expected, "{strategy}");
    }

    // merge needs one new row per key; delete+insert takes them all.
    let p = events_project(EVENTS_MODEL);
    let first = write_events(&p, "raw/events1.csv", &batch1);
    let twice = write_events(&p, "raw/events2.csv", &["1,a,1,1", "6,x,3,2", "6,y,3,2"]);
    let v = |file: &str, s: &str| format!("{{events: '{file}', strategy: '{s}'}}");
    assert_exit(&p.wh(&["build", "--vars", &v(&first, "merge")]), 0);
    let out = p.wh(&["build", "--vars", &v(&twice, "merge")]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("1 unique_key value(s) appear more than once among the new rows"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: ") && stderr(&out).contains("--> models/events_inc.sql"), "{}", stderr(&out));
    // The failed build left the published table as it was.
    assert_eq!(query(&p, &v(&first, "merge"), "select count(*) from events_inc"), ["4"]);
    assert_exit(&p.wh(&["build", "--vars", &v(&twice, "delete+insert")]), 0);
    assert_eq!(query(&p, &v(&first, "merge"), "select v from events_inc where id = 6 order by v"), ["x", "y"]);

    // delete_flag deletes by key: not with append.
    let p = events_project(
        "{{ config(materialized='incremental', incremental_strategy='append', delete_flag='gone') }}\nselect 1 as id\n",
    );
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("`delete_flag` deletes by `unique_key`"), "{}", stderr(&out));

    // A merge without a unique_key is a project error, located.
    let p = events_project("{{ config(materialized='incremental', incremental_strategy='merge') }}\nselect 1 as id\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("the `merge` strategy needs a `unique_key`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("models/events_inc.sql:1"), "{}", stderr(&out));
}

#[test]
fn on_schema_change_fails_appends_or_syncs_columns() {
    // Build 2 adds column `w` and drops `v`.
    let model = "{{ config(materialized='incremental', unique_key='id', incremental_strategy='merge', \
         on_schema_change=var('policy')) }}\n\
         {% if is_incremental() %}select id, day * 10 as w, loaded from {{ source('raw', 'events') }} \
         where loaded > (select max(loaded) from {{ this }})\n\
         {% else %}select id, v, loaded from {{ source('raw', 'events') }}{% endif %}\n";
    let run = |policy: &str| {
        let p = events_project(model);
        let first = write_events(&p, "raw/e1.csv", &["1,a,1,1", "2,b,1,1"]);
        let second = write_events(&p, "raw/e2.csv", &["1,a,1,1", "2,b,1,1", "2,b,3,2", "3,c,4,2"]);
        let v = |file: &str| format!("{{events: '{file}', policy: {policy}}}");
        assert_exit(&p.wh(&["build", "--vars", &v(&first)]), 0);
        let out = p.wh(&["build", "--vars", &v(&second)]);
        (p, out, v(&second))
    };
    let (p, out, v) = run("fail");
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("new `w`; gone `v`") && err.contains("on_schema_change is `fail`"), "{err}");
    assert!(err.contains("--full-refresh"), "{err}");
    assert_eq!(query(&p, &v, "select * from events_inc order by id"), ["1,a,1", "2,b,1"]);

    let (_, out, _) = run("ignore");
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("columns the model no longer returns (`v`)"), "{}", stderr(&out));

    let (p, out, v) = run("append_new_columns");
    assert_exit(&out, 0);
    assert_eq!(query(&p, &v, "select id, v, loaded, w from events_inc order by id"), ["1,a,1,", "2,,2,30", "3,,2,40"]);

    let (p, out, v) = run("sync_all_columns");
    assert_exit(&out, 0);
    assert_eq!(query(&p, &v, "select * from events_inc order by id"), ["1,,1", "2,30,2", "3,40,2"]);
}

/// Returns the customer snapshot's rows as (customer_id, email,
/// valid_from, valid_to).
fn snapshot_rows(p: &TempProject) -> Vec<Vec<String>> {
    query(p, &golden_vars(), "select customer_id, email, dbt_valid_from, dbt_valid_to from snp_customers order by customer_id, dbt_valid_from")
        .into_iter()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn snapshots_keep_every_version_with_its_validity_range() {
    let raw = tempfile::tempdir().unwrap();
    let orders = [Order(1, Some(1), "2023-04-10", 150.0), Order(2, Some(2), "2023-05-20", 200.0)];
    let lines = [Line(1, 1, 10, 2.0, 50.0)];
    write_raw(raw.path(), CUSTOMERS, &orders, &lines);
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &vars(raw.path())]), 0);
    let first = snapshot_rows(&p);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|r| r[3].is_empty()), "every first version is current: {first:?}");
    let t1 = first[0][2].clone();
    assert!(first.iter().all(|r| r[2] == t1), "{first:?}");

    // Laura changes her email; Ana leaves (hard_deletes: invalidate).
    let changed = [
        Customer(1, "Juan Pérez", "juan@email.com", "2023-01-15"),
        Customer(2, "Laura Gómez", "laura.gomez@email.com", "2023-02-10"),
    ];
    write_raw(raw.path(), &changed, &orders, &lines);
    let out = p.wh(&["build", "--vars", &vars(raw.path())]);
    assert_exit(&out, 0);
    let rows = snapshot_rows(&p);
    let t2 = rows.iter().find(|r| r[1] == "laura.gomez@email.com").map(|r| r[2].clone()).unwrap();
    assert!(t2 > t1, "{t2} after {t1}");
    let expected: Vec<Vec<String>> = [
        ["1", "juan@email.com", &t1, ""],
        ["2", "laura@email.com", &t1, &t2],
        ["2", "laura.gomez@email.com", &t2, ""],
        ["3", "ana@email.com", &t1, &t2],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, expected);
    // --full-refresh does not rebuild history.
    assert_exit(&p.wh(&["build", "--full-refresh", "--vars", &vars(raw.path())]), 0);
    assert_eq!(snapshot_rows(&p), expected);
    // `wh snapshot` runs the snapshots only, as `dbt snapshot`.
    let out = p.wh(&["snapshot", "--select", "snp_customers+", "--vars", &vars(raw.path())]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("Running 1 of 34 models"), "{}", stderr(&out));
    assert_eq!(snapshot_rows(&p), expected);
    // The meta columns are microsecond timestamps, as BI tools want.
    let schema = p.schema("snapshots/snp_customers.parquet");
    let vf = schema.field_with_name("dbt_valid_from").unwrap();
    assert_eq!(format!("{:?}", vf.data_type()), "Timestamp(Microsecond, None)");
}

#[test]
fn segment_changes_list_the_customers_whose_segment_changed_in_the_latest_build() {
    let raw = tempfile::tempdir().unwrap();
    let day1 = [
        Order(1, Some(1), "2023-04-10", 150.0),
        Order(2, Some(2), "2023-05-20", 200.0),
        Order(3, Some(1), "2023-06-05", 75.0),
    ];
    write_raw(raw.path(), &CUSTOMERS[..2], &day1, &[Line(1, 1, 10, 2.0, 50.0)]);
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &vars(raw.path())]), 0);
    let segments =
        || query(&p, &vars(raw.path()), "select customer_id, rfm_segment from mart_customer_rfm order by customer_id");
    assert_eq!(segments(), ["1,04 - At Risk", "2,05 - Lost Customers"]);
    // First segments are not changes.
    assert!(p.rows("marts/rfm_segment_changes.parquet").is_empty());

    // Laura orders again, big and late: the two swap segments.
    let mut day2: Vec<Order> = day1.to_vec();
    day2.push(Order(4, Some(2), "2023-07-01", 500.0));
    write_raw(raw.path(), &CUSTOMERS[..2], &day2, &[Line(1, 1, 10, 2.0, 50.0)]);
    assert_exit(&p.wh(&["build", "--vars", &vars(raw.path())]), 0);
    assert_eq!(segments(), ["1,05 - Lost Customers", "2,04 - At Risk"]);
    let changes = p.rows("marts/rfm_segment_changes.parquet");
    let feed: Vec<Vec<String>> = changes.iter().map(|r| r[..4].to_vec()).collect();
    assert_eq!(
        feed,
        table(&[
            &["1", "Juan Pérez", "04 - At Risk", "05 - Lost Customers"],
            &["2", "Laura Gómez", "05 - Lost Customers", "04 - At Risk"],
        ])
    );
    // changed_at is when the snapshot recorded the new, current segment.
    let matched = query(
        &p,
        &vars(raw.path()),
        "select count(*) from rfm_segment_changes c join snp_customer_rfm s on s.customer_id = c.customer_id \
         and s.dbt_valid_from = c.changed_at and s.dbt_valid_to is null and s.rfm_segment = c.new_segment",
    );
    assert_eq!(matched, ["2"]);

    // A build that changes nothing lists nothing.
    assert_exit(&p.wh(&["build", "--vars", &vars(raw.path())]), 0);
    assert!(p.rows("marts/rfm_segment_changes.parquet").is_empty());
    assert_eq!(query(&p, &vars(raw.path()), "select count(*) from snp_customer_rfm"), ["4"]);
}

#[test]
fn a_snapshot_needs_its_strategy_settings() {
    let p = TempProject::fixture("a_snapshot_needs_its_strategy_settings");
    let out = p.wh(&["compile", "--vars", &golden_vars()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("snapshot `snp_customers`: the `timestamp` strategy needs `updated_at`"), "{err}");
    assert!(err.contains("snapshots/snp_customers.sql:2"), "{err}");
    assert!(err.contains("hint: add updated_at='column'"), "{err}");
}

#[test]
fn timestamp_snapshots_record_deletes_as_new_records() {
    let p = events_project("select 1 as unused");
    p.write(
        "snapshots/snp_events.sql",
        "{% snapshot snp_events %}\n\
         {{ config(unique_key='id', strategy='timestamp', updated_at='updated', hard_deletes='new_record') }}\n\
         select id, v, cast(updated as timestamp) as updated from {{ source('raw', 'events') }}\n\
         {% endsnapshot %}\n",
    );
    let builds: [&[&str]; 4] = [
        &["1,a,2024-01-01T00:00:00", "2,b,2024-01-01T00:00:00"],
        // 1 changes (a later updated_at), 3 arrives.
        &["1,a2,2024-01-02T00:00:00", "2,b,2024-01-01T00:00:00", "3,c,2024-01-02T00:00:00"],
        // 2 is deleted at the source.
        &["1,a2,2024-01-02T00:00:00", "3,c,2024-01-02T00:00:00"],
        // 2 comes back, changed.
        &["1,a2,2024-01-02T00:00:00", "2,b2,2024-01-05T00:00:00", "3,c,2024-01-02T00:00:00"],
    ];
    let mut vars = String::new();
    for (n, rows) in builds.iter().enumerate() {
        let rel = format!("raw/events{n}.csv");
        p.write(&rel, &format!("id,v,updated\n{}\n", rows.join("\n")));
        vars = format!("{{events: '{}'}}", p.path().join(&rel).display());
        assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    }
    let rows: Vec<Vec<String>> = query(
        &p,
        &vars,
        "select id, v, dbt_valid_from, dbt_valid_to, dbt_is_deleted from snp_events order by id, dbt_valid_from",
    )
    .into_iter()
    .map(|l| l.split(',').map(str::to_string).collect())
    .collect();
    assert_eq!(rows.len(), 6, "{rows:?}");
    fn cells(r: &[String]) -> Vec<&str> {
        r.iter().map(String::as_str).collect()
    }
    assert_eq!(cells(&rows[0]), ["1", "a", "2024-01-01T00:00:00", "2024-01-02T00:00:00", "False"]);
    assert_eq!(cells(&rows[1]), ["1", "a2", "2024-01-02T00:00:00", "", "False"]);
    // 2: its version closed when the delete was seen, a deleted marker
    // from then until it came back, then its new version.
    let (deleted_at, back_at) = (rows[3][2].clone(), rows[3][3].clone());
    assert!(deleted_at.starts_with("20") && deleted_at.as_str() > "2024-12-31", "{rows:?}");
    assert_eq!(cells(&rows[2]), ["2", "b", "2024-01-01T00:00:00", deleted_at.as_str(), "False"]);
    assert_eq!(cells(&rows[3]), ["2", "b", deleted_at.as_str(), back_at.as_str(), "True"]);
    assert_eq!(cells(&rows[4]), ["2", "b2", back_at.as_str(), "", "False"]);
    assert!(back_at > deleted_at);
    assert_eq!(cells(&rows[5]), ["3", "c", "2024-01-02T00:00:00", "", "False"]);
}

#[test]
fn snapshot_meta_columns_can_be_renamed() {
    let p = events_project("select 1 as unused");
    p.write(
        "snapshots/history.sql",
        "{% snapshot snp_events %}\n\
         {{ config(unique_key='id', strategy='check', check_cols='all', \
         snapshot_meta_column_names={'dbt_valid_from': 'valid_from', 'dbt_valid_to': 'valid_to'}) }}\n\
         select id, v from {{ source('raw', 'events') }}\n\
         {% endsnapshot %}\n",
    );
    let file = write_events(&p, "raw/e.csv", &["1,a,1,1"]);
    let vars = format!("{{events: '{file}'}}");
    assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    let schema = p.schema("snapshots/snp_events.parquet");
    assert_eq!(columns(&schema), ["id", "v", "dbt_scd_id", "dbt_updated_at", "valid_from", "valid_to"]);
    write_events(&p, "raw/e.csv", &["1,b,1,1"]);
    assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    let rows = query(&p, &vars, "select v, valid_to is null from snp_events order by valid_from");
    assert_eq!(rows, ["a,false", "b,true"]);
}
