//! `wh report`: a governance report, one self-contained HTML file, read
//! from the assertion history: per owner, the assertions on their models and
//! sources, the pass rate over the last N runs, and the latest failures with
//! samples of their failing rows.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{compile_project, open_warehouse, Settings};
use crate::docs::chart::esc;
use crate::error::Error;
use crate::storage::publish::write_atomic;

/// Rows shown from each failing-row sample.
const SAMPLE_PREVIEW: usize = 10;

/// Writes the report to `out` (relative to the project).
pub async fn execute(settings: &Settings, out: &Path, runs: usize) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let ctx = super::context::Context::reachable(settings, &compiled).await?;
    let warehouse = &ctx.warehouse;
    let engine = open_warehouse(settings, &ctx, &compiled, &graph).await?;
    if !engine.has_table("wh_test_results") {
        return Err(Error::Usage {
            message: "the warehouse has no assertion history yet".into(),
            hint: Some("run `wh build` or `wh test` first".into()),
        });
    }
    let sql = "select run_id, cast(run_started_at as varchar) as started, coalesce(owner, '(no owner)') as owner, \
               steward, test_name, assertion, subject, column_name, severity, status, failing_rows, rows_scanned, \
               sample_path, message from wh_test_results order by run_started_at, test_name";
    let (_, batches) = engine.query(sql).await?;
    let rows = to_rows(&batches);
    let col = |r: &Vec<String>, i: usize| r[i].clone();

    // The last N runs, newest last.
    let mut run_order: Vec<(String, String)> = rows.iter().map(|r| (col(r, 1), col(r, 0))).collect();
    run_order.dedup();
    let recent: Vec<String> = run_order.iter().rev().take(runs.max(1)).map(|(_, id)| id.clone()).collect();
    let latest = recent.first().cloned().unwrap_or_default();

    // owner -> test -> outcomes (oldest first) within the recent runs.
    let mut by_owner: BTreeMap<String, BTreeMap<String, Vec<&Vec<String>>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| recent.contains(&r[0])) {
        by_owner.entry(col(r, 2)).or_default().entry(col(r, 4)).or_default().push(r);
    }

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Governance report: {p}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}}th{{background:#f3f3f3}}\
         .pass{{color:#1a7f37}}.warn{{color:#9a6700}}.fail,.error{{color:#cf222e;font-weight:bold}}</style></head><body>\
         <h1>Governance report: {p}</h1><p>Target <code>{t}</code>; {n} run(s) in the history, the last {k} covered; \
         latest run <code>{latest}</code>.</p>",
        p = esc(&compiled.project_name),
        t = esc(&settings.project.target.name),
        n = run_order.len(),
        k = recent.len(),
        latest = esc(&latest),
    );
    for (owner, tests) in &by_owner {
        let _ = write!(
            html,
            "<h2>Owner: {}</h2><table><tr><th>assertion</th><th>on</th><th>kind</th><th>severity</th>\
            <th>latest</th><th>pass rate</th><th>failing rows (latest)</th></tr>",
            esc(owner)
        );
        let mut failures = Vec::new();
        for (name, outcomes) in tests {
            let last = outcomes[outcomes.len() - 1];
            let passes = outcomes.iter().filter(|r| r[9] == "pass").count();
            let on = if last[7].is_empty() { last[6].clone() } else { format!("{}.{}", last[6], last[7]) };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{s}\">{s}</td><td>{}/{} ({:.0}%)</td><td>{}</td></tr>",
                esc(name),
                esc(&on),
                esc(&last[5]),
                esc(&last[8]),
                passes,
                outcomes.len(),
                passes as f64 * 100.0 / outcomes.len() as f64,
                esc(&last[10]),
                s = esc(&last[9]),
            );
            if last[0] == latest && last[9] != "pass" {
                failures.push(last);
            }
        }
        html.push_str("</table>");
        if !failures.is_empty() {
            html.push_str("<h3>Latest failures and warnings</h3>");
        }
        for f in failures {
            let _ = write!(
                html,
                "<p><b>{}</b> <span class=\"{s}\">{s}</span>: {}</p>",
                esc(&f[4]),
                esc(&f[13]),
                s = esc(&f[9])
            );
            if !f[12].is_empty() {
                html.push_str(&sample_table(warehouse.get(&f[12]).await.ok().flatten()));
            }
        }
    }
    html.push_str(&monitors_section(&compiled, &engine, warehouse).await);
    html.push_str("</body></html>\n");
    let path = if out.is_absolute() { out.to_path_buf() } else { settings.project.root.join(out) };
    write_atomic(&path, html.as_bytes()).map_err(|source| Error::Io { path: path.clone(), source })?;
    settings.log(format!("Wrote the governance report for {} owner(s) to {}", by_owner.len(), path.display()));
    Ok(ExitCode::SUCCESS)
}

fn to_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let f: Vec<ArrayFormatter> =
            b.columns().iter().filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok()).collect();
        for i in 0..b.num_rows() {
            rows.push(f.iter().map(|x| x.value(i).to_string()).collect());
        }
    }
    rows
}

/// Renders the first rows of a sample file as an HTML table.
fn sample_table(file: Option<bytes::Bytes>) -> String {
    let Some(file) = file else { return "<p><i>sample no longer available</i></p>".into() };
    let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(file) else { return String::new() };
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let Ok(reader) = builder.with_batch_size(SAMPLE_PREVIEW).build() else { return String::new() };
    let batches: Vec<RecordBatch> = reader.take(1).filter_map(Result::ok).collect();
    let mut html = String::from("<table><tr>");
    for n in &names {
        let _ = write!(html, "<th>{}</th>", esc(n));
    }
    html.push_str("</tr>");
    for row in to_rows(&batches) {
        html.push_str("<tr>");
        for v in row {
            let _ = write!(html, "<td>{}</td>", esc(&v));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// How many buckets a monitor's chart shows.
const CHART_BUCKETS: usize = 90;
/// How many dimension values of one monitor are charted.
const CHART_SERIES: usize = 12;

/// Returns the monitors' section: per monitor, a chart of each dimension
/// value's recent buckets with the expected band and the anomalies found.
async fn monitors_section(
    compiled: &crate::compile::Compiled,
    engine: &crate::exec::Engine,
    warehouse: &crate::storage::Warehouse,
) -> String {
    let monitors: Vec<_> = compiled.assertions.iter().filter_map(|a| Some((a, a.monitor.as_deref()?))).collect();
    if monitors.is_empty() {
        return String::new();
    }
    let loaded = crate::quality::monitor::load(engine, warehouse).await;
    let mut html = String::from("<h2>Monitors</h2>");
    for (a, m) in monitors {
        let _ = write!(
            html,
            "<h3 class=\"monitor\">{}</h3><p>{} per {} of <code>{}</code>, method {}, band ± {} σ</p>",
            esc(&a.name),
            esc(&m.metric),
            m.bucket.as_str(),
            esc(a.subject.name()),
            m.method.as_str(),
            m.sensitivity
        );
        let charts = crate::docs::chart::monitor_charts(m, &loaded, CHART_BUCKETS, CHART_SERIES);
        if charts.is_empty() {
            html.push_str("<p><i>no buckets recorded yet</i></p>");
        }
        html.push_str(&charts.concat());
    }
    html
}
