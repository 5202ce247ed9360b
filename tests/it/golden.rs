//! The golden example of SPEC §2: every model's exact rows.

use crate::common::*;

fn build_golden(extra: &[&str]) -> TempProject {
    let p = TempProject::example();
    let vars = golden_vars();
    let mut args = vec!["build", "--vars", vars.as_str()];
    args.extend_from_slice(extra);
    let out = p.wh(&args);
    assert_exit(&out, 0);
    p
}

#[test]
fn golden_staging_and_star() {
    let p = build_golden(&[]);
    assert_eq!(
        p.rows("staging/stg_customers.parquet"),
        table(&[
            &["1", "Juan Pérez", "juan@email.com", "2023-01-15"],
            &["2", "Laura Gómez", "laura@email.com", "2023-02-10"]
        ])
    );
    assert_eq!(p.rows("star/dim_customers.parquet"), p.rows("staging/stg_customers.parquet"));
    let products = table(&[
        &["10", "Laptop", "Electrónica"],
        &["11", "Mouse", "Electrónica"],
        &["12", "Silla Oficina", "Muebles"],
    ]);
    assert_eq!(p.rows("staging/stg_products.parquet"), products);
    assert_eq!(p.rows("star/dim_products.parquet"), products);
    assert_eq!(
        p.rows("staging/stg_orders.parquet"),
        table(&[
            &["1", "1", "2023-04-10", "150.0"],
            &["2", "2", "2023-05-20", "200.0"],
            &["3", "1", "2023-06-05", "75.0"]
        ])
    );
    assert_eq!(
        p.rows("staging/stg_order_items.parquet"),
        table(&[&["1", "1", "10", "2", "50.0"], &["2", "1", "11", "1", "50.0"], &["3", "2", "12", "4", "50.0"]])
    );
    assert_eq!(
        p.rows("star/fct_orders.parquet"),
        table(&[
            &["1", "1", "2023-04-10", "150.0", "2", "3", "150.0"],
            &["2", "2", "2023-05-20", "200.0", "1", "4", "200.0"],
            &["3", "1", "2023-06-05", "75.0", "0", "0", "0.0"],
        ])
    );
    assert_eq!(
        columns(&p.schema("star/fct_orders.parquet")),
        ["order_id", "customer_id", "order_date", "total_amount", "item_lines", "units", "items_amount"]
    );
    assert_eq!(
        p.rows("star/fct_order_items.parquet"),
        table(&[
            &["1", "1", "1", "2023-04-10", "10", "2", "50.0", "100.0"],
            &["2", "1", "1", "2023-04-10", "11", "1", "50.0", "50.0"],
            &["3", "2", "2", "2023-05-20", "12", "4", "50.0", "200.0"],
        ])
    );
}

#[test]
fn golden_dim_date() {
    let p = build_golden(&[]);
    let rows = p.rows("star/dim_date.parquet");
    assert_eq!(
        columns(&p.schema("star/dim_date.parquet")),
        ["date_key", "date_day", "year", "quarter", "month", "day_of_month", "iso_day_of_week", "is_weekend"]
    );
    // 2023-04-10 .. 2023-06-05: 21 + 31 + 5 days.
    assert_eq!(rows.len(), 57);
    assert_eq!(rows[0], ["20230410", "2023-04-10", "2023", "2", "4", "10", "1", "false"]);
    assert_eq!(rows[5], ["20230415", "2023-04-15", "2023", "2", "4", "15", "6", "true"]);
    assert_eq!(rows[6], ["20230416", "2023-04-16", "2023", "2", "4", "16", "7", "true"]);
    assert_eq!(rows[56], ["20230605", "2023-06-05", "2023", "2", "6", "5", "1", "false"]);
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "one row per day, in order");
}

#[test]
fn golden_marts() {
    let p = build_golden(&[]);
    assert_eq!(
        p.rows("marts/customer_order_summary.parquet"),
        table(&[&["1", "Juan Pérez", "2", "225.0"], &["2", "Laura Gómez", "1", "200.0"]])
    );
    assert_eq!(
        columns(&p.schema("marts/mart_customer_rfm.parquet"))[..11],
        [
            "customer_id",
            "customer_name",
            "last_order_date",
            "recency_days",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "rfm_cell",
            "rfm_segment"
        ]
    );
    // as-of = the day after the latest order (2023-06-05).
    assert_eq!(
        p.rows("marts/mart_customer_rfm.parquet"),
        table(&[
            &["1", "Juan Pérez", "2023-06-05", "1", "2", "225.0", "2", "2", "2", "222", "04 - At Risk", "2023-06-06"],
            &[
                "2",
                "Laura Gómez",
                "2023-05-20",
                "17",
                "1",
                "200.0",
                "1",
                "1",
                "1",
                "111",
                "05 - Lost Customers",
                "2023-06-06"
            ],
        ])
    );
}

#[test]
fn golden_analyses() {
    let p = build_golden(&[]);
    assert_eq!(p.rows("analyses/units_by_category.parquet"), table(&[&["Muebles", "4"], &["Electrónica", "3"]]));
    assert_eq!(
        p.rows("analyses/customer_running_spend.parquet"),
        table(&[
            &["1", "Juan Pérez", "1", "2023-04-10", "150.0", "150.0"],
            &["1", "Juan Pérez", "3", "2023-06-05", "75.0", "225.0"],
            &["2", "Laura Gómez", "2", "2023-05-20", "200.0", "200.0"],
        ])
    );
    assert!(p.rows("analyses/products_never_sold.parquet").is_empty());
    assert_eq!(columns(&p.schema("analyses/products_never_sold.parquet")), ["product_id", "product_name", "category"]);
    assert_eq!(p.rows("analyses/pareto_top20.parquet"), table(&[&["2", "1", "225.0", "425.0", "0.5294117647058824"]]));
}

#[test]
fn as_of_date_var_moves_recency() {
    let p = TempProject::example();
    let raw = repo().join("tests/fixtures/golden/raw");
    let vars = format!("{{raw_root: '{}', as_of_date: 2023-07-01}}", raw.display());
    assert_exit(&p.wh(&["build", "--vars", &vars, "--select", "+mart_customer_rfm"]), 0);
    let rows = p.rows("marts/mart_customer_rfm.parquet");
    assert_eq!(rows[0][3], "26");
    assert_eq!(rows[1][3], "42");
    assert_eq!(rows[0][11], "2023-07-01");
}

#[test]
fn marts_use_bi_friendly_types() {
    use datafusion::arrow::datatypes::DataType;
    let p = build_golden(&[]);
    for rel in [
        "marts/mart_customer_rfm.parquet",
        "marts/customer_order_summary.parquet",
        "analyses/pareto_top20.parquet",
        "star/dim_date.parquet",
    ] {
        for f in p.schema(rel).fields() {
            let ok = matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Float64
                    | DataType::Date32
                    | DataType::Boolean
            );
            assert!(ok, "{rel}: column {} has type {}", f.name(), f.data_type());
        }
    }
}

#[test]
fn other_raw_types_give_the_same_warehouse() {
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, Float32Array, Int32Array, StringArray, TimestampMicrosecondArray,
        TimestampNanosecondArray,
    };
    use std::sync::Arc;
    let raw = tempfile::tempdir().unwrap();
    let r = raw.path();
    let s = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let day = |y: i32, m: u32, d: u32| {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros()
    };
    let money =
        |v: &[i128]| Arc::new(Decimal128Array::from(v.to_vec()).with_precision_and_scale(10, 2).unwrap()) as ArrayRef;
    // ids as text, created_at as a UTC timestamp (ns).
    wh::datagen::write_table(
        &r.join("customers.parquet"),
        vec![
            ("id", s(&["1", "2"])),
            ("name", s(&["Juan Pérez", "Laura Gómez"])),
            ("email", s(&["juan@email.com", "laura@email.com"])),
            (
                "created_at",
                Arc::new(
                    TimestampNanosecondArray::from(vec![
                        day(2023, 1, 15) * 1000 + 3_600_000_000_000,
                        day(2023, 2, 10) * 1000,
                    ])
                    .with_timezone("UTC"),
                ),
            ),
        ],
    )
    .unwrap();
    wh::datagen::write_table(
        &r.join("products.parquet"),
        vec![
            ("id", s(&["10", "11", "12"])),
            ("name", s(&["Laptop", "Mouse", "Silla Oficina"])),
            ("category", s(&["Electrónica", "Electrónica", "Muebles"])),
        ],
    )
    .unwrap();
    // order_date as a timestamp without zone, total_amount as DECIMAL(10,2).
    wh::datagen::write_table(
        &r.join("orders.parquet"),
        vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            ("customer_id", Arc::new(Float32Array::from(vec![1.0, 2.0, 1.0]))),
            (
                "order_date",
                Arc::new(TimestampMicrosecondArray::from(vec![day(2023, 4, 10), day(2023, 5, 20), day(2023, 6, 5)])),
            ),
            ("total_amount", money(&[15000, 20000, 7500])),
        ],
    )
    .unwrap();
    // quantity as text, unit_price as DECIMAL, dates nowhere.
    wh::datagen::write_table(
        &r.join("order_items.parquet"),
        vec![
            ("id", s(&["1", "2", "3"])),
            ("order_id", Arc::new(Int32Array::from(vec![1, 1, 2]))),
            ("product_id", Arc::new(Int32Array::from(vec![10, 11, 12]))),
            ("quantity", s(&["2", "1", "4"])),
            ("unit_price", money(&[5000, 5000, 5000])),
        ],
    )
    .unwrap();
    let golden = build_golden(&[]);
    let other = TempProject::example();
    let vars = format!("{{raw_root: '{}'}}", r.display());
    assert_exit(&other.wh(&["build", "--vars", &vars]), 0);
    for rel in [
        "staging/stg_customers.parquet",
        "staging/stg_products.parquet",
        "staging/stg_orders.parquet",
        "staging/stg_order_items.parquet",
        "star/dim_customers.parquet",
        "star/dim_products.parquet",
        "star/dim_date.parquet",
        "star/fct_orders.parquet",
        "star/fct_order_items.parquet",
        "marts/mart_customer_rfm.parquet",
        "marts/customer_order_summary.parquet",
        "analyses/units_by_category.parquet",
        "analyses/customer_running_spend.parquet",
        "analyses/products_never_sold.parquet",
        "analyses/pareto_top20.parquet",
    ] {
        assert_eq!(other.rows(rel), golden.rows(rel), "{rel}");
        assert_eq!(other.schema(rel), golden.schema(rel), "{rel}");
    }
}
