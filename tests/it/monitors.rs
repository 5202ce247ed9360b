//! Metric monitors (`metric_anomalies`): an injected drop is found with the
//! band its history predicts, the metric history is appended and reused,
//! an ongoing anomaly alerts once, and an error-severity anomaly keeps its
//! model from being published.

use std::collections::BTreeMap;

use crate::common::*;

const DAYS: usize = 63;
/// Weekday revenue of category A, Monday to Sunday; B sells half of it.
const WEEK: [f64; 7] = [100.0, 104.0, 98.0, 101.0, 120.0, 140.0, 60.0];

/// The revenue of `category` on day `i` (2024-01-01 is a Monday), with a
/// little deterministic noise.
fn revenue(category: &str, i: usize) -> f64 {
    let base = WEEK[i % 7] * if category == "A" { 1.0 } else { 0.5 };
    base + ((i * 7919 + category.len() * 31) % 11) as f64 - 5.0
}

fn day(i: usize) -> String {
    (chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(i as i64)).to_string()
}

/// Writes the sales seed: `days` days of A and B, with B's revenue on the
/// days of `cut` multiplied by its factor.
fn write_sales(p: &TempProject, days: usize, cut: &BTreeMap<usize, f64>) {
    let mut csv = String::from("day,category,amount\n");
    for i in 0..days {
        csv.push_str(&format!("{},A,{}\n", day(i), revenue("A", i)));
        let b = revenue("B", i) * cut.get(&i).copied().unwrap_or(1.0);
        csv.push_str(&format!("{},B,{b}\n", day(i)));
    }
    p.write("seeds/sales.csv", &csv);
}

fn project(severity: &str) -> TempProject {
    let p = TempProject::empty();
    p.write(
        "wh_project.yml",
        "name: mon\ntargets:\n  dev: {warehouse: warehouse}\n\
         alerts:\n  on: [warning, failure]\n  command: \"cat > alert.json\"\n  \
         report_url: https://reports.example/wh/report.html\n",
    );
    p.write("models/daily.sql", "select cast(day as date) as day, category, amount from {{ ref('sales') }}\n");
    p.write(
        "models/schema.yml",
        &format!(
            "version: 2\nmodels:\n  - name: daily\n    data_tests:\n      - metric_anomalies:\n          \
             name: revenue_by_category\n          metric: sum(amount)\n          timestamp_column: day\n          \
             dimensions: [category]\n          method: seasonal\n          severity: {severity}\n"
        ),
    );
    p
}

/// The metric history's files, oldest first, as maps of column to value.
fn metric_files(p: &TempProject) -> Vec<Vec<BTreeMap<String, String>>> {
    let dir = p.path().join("warehouse/_wh/metrics");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let names = columns(&read_batches(f).0);
            read_rows(f).into_iter().map(|r| names.iter().cloned().zip(r).collect()).collect()
        })
        .collect()
}

fn scored<'a>(rows: &'a [BTreeMap<String, String>], dim: &str, d: &str) -> &'a BTreeMap<String, String> {
    let found = rows.iter().find(|r| r["dimension"] == dim && r["bucket_start"].starts_with(d) && r["score"] != "NULL");
    found.unwrap_or_else(|| panic!("no scored {dim} on {d} in {rows:?}"))
}

fn number(row: &BTreeMap<String, String>, key: &str) -> f64 {
    row[key].parse().unwrap_or_else(|_| panic!("{key} = {}", row[key]))
}

/// Mean and sample standard deviation of B's revenue on the same weekday
/// in the eight weeks before day `last`, computed from the seed's values.
fn band(last: usize, cut: &BTreeMap<usize, f64>) -> (f64, f64) {
    let values: Vec<f64> = (last - 56..last)
        .filter(|i| i % 7 == last % 7)
        .map(|i| revenue("B", i) * cut.get(&i).copied().unwrap_or(1.0))
        .collect();
    assert_eq!(values.len(), 8);
    let mean = values.iter().sum::<f64>() / 8.0;
    let sd = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    (mean, sd)
}

#[test]
fn a_drop_is_found_against_its_weekday_band_and_alerted_once_while_it_goes_on() {
    let p = project("warn");
    let mut cut = BTreeMap::from([(DAYS - 1, 0.5)]);
    write_sales(&p, DAYS, &cut);
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("category=B in the day of 2024-03-03 was"), "{err}");
    assert!(err.contains("1 anomalous of 2 scored bucket(s)"), "{err}");

    // The scored buckets carry the band the seed's own values give.
    let files = metric_files(&p);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].len(), 2 * DAYS, "every bucket of both categories is recorded");
    let b = scored(&files[0], "category=B", &day(DAYS - 1));
    let (mean, sd) = band(DAYS - 1, &cut);
    assert!((number(b, "expected") - mean).abs() < 1e-9, "{b:?} vs {mean}");
    assert!((number(b, "lower") - (mean - 3.0 * sd)).abs() < 1e-9);
    assert!((number(b, "upper") - (mean + 3.0 * sd)).abs() < 1e-9);
    assert!((number(b, "value") - revenue("B", DAYS - 1) * 0.5).abs() < 1e-9);
    assert_eq!(b["anomalous"], "true");
    assert_eq!(scored(&files[0], "category=A", &day(DAYS - 1))["anomalous"], "false");

    // The alert names the anomaly and its band.
    let alert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("alert.json")).unwrap()).unwrap();
    assert_eq!(alert["report_url"], "https://reports.example/wh/report.html");
    let anomaly = &alert["problems"][0]["anomalies"][0];
    assert_eq!((anomaly["dimension"].as_str(), anomaly["bucket"].as_str()), (Some("category=B"), Some("2024-03-03")));
    assert!((anomaly["expected"].as_f64().unwrap() - mean).abs() < 1e-9, "{anomaly}");

    // One more day, B still down: only the buckets from the last recorded
    // one minus the detection period on are computed again.
    cut.insert(DAYS, 0.5);
    write_sales(&p, DAYS + 1, &cut);
    std::fs::remove_file(p.path().join("alert.json")).unwrap();
    assert_exit(&p.wh(&["build"]), 0);
    let files = metric_files(&p);
    let mut buckets: Vec<_> =
        files[1].iter().map(|r| (r["dimension"].clone(), r["bucket_start"][..10].to_string())).collect();
    buckets.sort();
    let expect: Vec<_> = ["category=A", "category=B"]
        .iter()
        .flat_map(|d| (DAYS - 2..=DAYS).map(move |i| (d.to_string(), day(i))))
        .collect();
    assert_eq!(buckets, expect);
    let monday = scored(&files[1], "category=B", &day(DAYS));
    let (mean, _) = band(DAYS, &cut);
    assert!((number(monday, "expected") - mean).abs() < 1e-9, "trained on the history: {monday:?}");
    assert!(p.path().join("alert.json").exists(), "a new day's anomaly alerts");

    // Rebuilt with an old value changed: the same anomaly, no worse, is
    // ongoing and not alerted again.
    std::fs::remove_file(p.path().join("alert.json")).unwrap();
    let csv = std::fs::read_to_string(p.path().join("seeds/sales.csv")).unwrap();
    p.write("seeds/sales.csv", &csv.replacen(&format!("{},A,", day(0)), &format!("{},A,1", day(0)), 1));
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("No alert sent: the anomalies go on"), "{}", stderr(&out));
    assert!(!p.path().join("alert.json").exists());
    let last = metric_files(&p).pop().unwrap();
    assert_eq!(scored(&last, "category=B", &day(DAYS))["ongoing"], "true");

    // Worse: alerted again.
    cut.insert(DAYS, 0.05);
    write_sales(&p, DAYS + 1, &cut);
    assert_exit(&p.wh(&["build"]), 0);
    assert!(p.path().join("alert.json").exists(), "a worse anomaly alerts again");
}

#[test]
fn an_error_severity_anomaly_keeps_the_previous_table_published() {
    let p = project("error");
    write_sales(&p, DAYS, &BTreeMap::new());
    assert_exit(&p.wh(&["build"]), 0);
    let table = p.path().join("warehouse/daily.parquet");
    let before = checksum(&table);
    write_sales(&p, DAYS, &BTreeMap::from([(DAYS - 1, 0.2)]));
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("not published: assertion `revenue_by_category`"), "{err}");
    assert_eq!(checksum(&table), before, "the previous version stays");
    // The sample lists the anomaly.
    let sample = p.path().join("warehouse/_wh/failures");
    let file = walkdir::WalkDir::new(sample).into_iter().filter_map(Result::ok).find(|e| e.file_type().is_file());
    let rows = read_rows(file.unwrap().path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][..2], ["category=B".to_string(), day(DAYS - 1)]);
}

#[test]
fn a_short_history_passes_while_it_learns_and_mistakes_name_their_file() {
    let p = project("error");
    write_sales(&p, 20, &BTreeMap::from([(19, 0.1)]));
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let test = results["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == "test.mon.revenue_by_category");
    let message = test.unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("learning: 2 of 4 training buckets so far"), "{message}");

    let yml = std::fs::read_to_string(p.path().join("models/schema.yml")).unwrap();
    p.write("models/schema.yml", &yml.replace("method: seasonal", "method: seasonal\n          sensitivity: 2"));
    let out = p.wh(&["build"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("no parameter `sensitivity`") && err.contains("anomaly_sensitivity"), "{err}");
    assert!(err.contains("models/schema.yml"), "{err}");
}

/// A forecast model of `daily` per category, and a monitor comparing each
/// day of `daily` with what it forecast for that day.
fn forecast_project() -> TempProject {
    let p = project("warn");
    p.write(
        "models/fc.sql",
        "{{ config(forecast={'metric': 'sum(amount)', 'timestamp_column': 'day', 'dimensions': ['category'], \
         'horizon': 7, 'level': 0.8}) }}\nselect * from {{ ref('daily') }}\n",
    );
    p.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: daily\n    data_tests:\n      - metric_anomalies:\n          \
         name: below_forecast\n          metric: sum(amount)\n          timestamp_column: day\n          \
         dimensions: [category]\n          method: forecast\n          forecast_model: fc\n          severity: warn\n",
    );
    p
}

/// The forecast table's rows as maps of column to value.
fn forecast_rows(p: &TempProject) -> Vec<BTreeMap<String, String>> {
    let f = p.path().join("warehouse/fc.parquet");
    let names = columns(&read_batches(&f).0);
    read_rows(&f).into_iter().map(|r| names.iter().cloned().zip(r).collect()).collect()
}

#[test]
fn a_forecast_model_forecasts_each_category_and_later_days_are_judged_by_it() {
    let p = forecast_project();
    // Days 0 to 55 have arrived; day 56 is the first not complete.
    write_sales(&p, 56, &BTreeMap::new());
    let as_of = |i: usize| format!("{{as_of_date: '{}'}}", day(i));
    let out = p.wh(&["build", "--vars", &as_of(56)]);
    assert_exit(&out, 0);
    let rows = forecast_rows(&p);
    assert_eq!(rows.len(), 14, "7 days of A and of B");
    let names = columns(&read_batches(&p.path().join("warehouse/fc.parquet")).0);
    let expect = ["day", "category", "step", "forecast", "lower", "upper", "level", "method", "trained_through"];
    assert_eq!(names, expect);
    let mut errors = Vec::new();
    for r in &rows {
        let i = 55 + r["step"].parse::<usize>().unwrap();
        assert_eq!((r["day"].as_str(), r["trained_through"].as_str()), (day(i).as_str(), day(55).as_str()));
        let (lower, point, upper) = (number(r, "lower"), number(r, "forecast"), number(r, "upper"));
        assert!(lower < point && point < upper, "{r:?}");
        errors.push(((point - revenue(&r["category"], i)) / revenue(&r["category"], i)).abs());
    }
    // The weekday pattern continues: the days the seed goes on with are
    // forecast within 10% on average (its noise is up to 5 on days of 30).
    let mape = errors.iter().sum::<f64>() / errors.len() as f64;
    assert!(mape < 0.1, "MAPE {mape}: {rows:?}");
    // The same input gives the same bytes.
    let table = p.path().join("warehouse/fc.parquet");
    let first = checksum(&table);
    assert_exit(&p.wh(&["build", "--full-refresh", "--select", "fc", "--vars", &as_of(56)]), 0);
    assert_eq!(checksum(&table), first, "deterministic");

    // Day 56 arrives with B at 40%: forecast not met, judged by the band
    // the forecast made before day 56 (the first build's and the rebuild's
    // are the same; the latest wins).
    let b56 = rows.iter().find(|r| r["category"] == "B" && r["step"] == "1").unwrap().clone();
    write_sales(&p, 57, &BTreeMap::from([(56, 0.4)]));
    let out = p.wh(&["build", "--vars", &as_of(57)]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    let results = std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap();
    assert!(
        err.contains("`below_forecast` on daily: sum(amount) for category=B in the day of 2024-02-26"),
        "{err}\n{results}"
    );
    assert!(err.contains("1 anomalous of 2 scored bucket(s)"), "A is within its band: {err}");
    let last = metric_files(&p).pop().unwrap();
    let judged = scored(&last, "category=B", &day(56));
    for (history, table) in [("expected", "forecast"), ("lower", "lower"), ("upper", "upper")] {
        assert_eq!(number(judged, history), number(&b56, table), "{history}");
    }
    assert!((number(judged, "value") - revenue("B", 56) * 0.4).abs() < 1e-9);
    // The new forecast starts after day 56; the history keeps all three.
    assert!(forecast_rows(&p).iter().all(|r| r["trained_through"] == day(56)));
    let made = std::fs::read_dir(p.path().join("warehouse/_wh/forecasts")).unwrap().count();
    assert_eq!(made, 3);
}

#[test]
fn forecast_mistakes_are_named_before_anything_runs() {
    let p = forecast_project();
    write_sales(&p, DAYS, &BTreeMap::new());
    p.write(
        "models/fc.sql",
        "{{ config(forecast={'metric': 'sum(amount)', 'timestamp_column': 'day', 'level': 90}) }}\nselect 1 as day\n",
    );
    let out = p.wh(&["build"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("models/fc.sql") && err.contains("between 0 and 1"), "{err}");
    p.write("models/fc.sql", "{{ config(forecast={'metric': 'sum(amount)', 'timestamp_column': 'day', 'method': 'prophet'}) }}\nselect 1 as day\n");
    let err = stderr(&p.wh(&["build"]));
    assert!(err.contains("prophet") && err.contains("mstl"), "{err}");
}
