//! `wh docs generate` writes the static docs site; `wh docs serve` serves it
//! on localhost.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use super::{compile_project, Settings};
use crate::docs::{site_data, Charts, History, Recorded, INDEX_HTML};
use crate::error::Error;
use crate::storage::publish::write_atomic;

/// How many recent runs of each assertion the site shows.
const HISTORY_RUNS: usize = 10;
/// How many buckets a monitor's chart shows, and of how many dimension
/// values.
const CHART_BUCKETS: usize = 90;
const CHART_SERIES: usize = 12;

/// Writes `index.html` and `data.js` into `out` (relative to the project).
pub async fn generate(settings: &Settings, out: &Path) -> Result<ExitCode, Error> {
    let clock = std::time::Instant::now();
    let (compiled, graph) = compile_project(settings)?;
    let ctx = super::context::Context::open(settings, &compiled)?;
    let lineage = ctx.lineage(&compiled, &graph).await;
    let history = read_history(&ctx).await;
    let footers = crate::catalog::footers(&compiled, &ctx.warehouse).await;
    let charts = read_charts(&ctx, &compiled).await;
    let recorded = Recorded { footers: &footers, history: &history, charts: &charts };
    let data = site_data(&compiled, &graph, &lineage, &settings.project.exposures, &recorded);
    let dir = if out.is_absolute() { out.to_path_buf() } else { settings.project.root.join(out) };
    let js = format!("window.WH_DOCS = {};\n", serde_json::to_string(&data).unwrap_or_default());
    for (name, bytes) in [("index.html", INDEX_HTML.as_bytes()), ("data.js", js.as_bytes())] {
        let path = dir.join(name);
        write_atomic(&path, bytes).map_err(|source| Error::Io { path: path.clone(), source })?;
    }
    settings.log(format!(
        "Wrote the docs site for {} models to {} in {:.2}s; open index.html, or run `wh docs serve`",
        compiled.models.len(),
        dir.display(),
        clock.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Reads the latest outcomes of each assertion from the history, if any.
async fn read_history(ctx: &super::context::Context) -> History {
    let warehouse = &ctx.warehouse;
    let mut out = History::new();
    let dir = format!("{}/", crate::quality::history::DIR);
    if !warehouse.exists(&dir).await.unwrap_or(false) {
        return out;
    }
    let Ok(engine) = ctx.engine(Some(1)).await else { return out };
    if engine.register_published("wh_test_results", &warehouse.location(&dir)).await.is_err() {
        return out;
    }
    let sql = "select test_name, cast(run_started_at as varchar) as started, status, \
               cast(failing_rows as varchar) as failing from wh_test_results order by run_started_at";
    let batches = match engine.query(sql).await {
        Ok((_, b)) => b,
        Err(e) => {
            eprintln!("warning: the assertion history is not readable, the site shows none: {e}");
            return out;
        }
    };
    let options = datafusion::arrow::util::display::FormatOptions::default();
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .filter_map(|c| datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for i in 0..b.num_rows() {
            let v: Vec<String> = cols.iter().map(|c| c.value(i).to_string()).collect();
            let runs = out.entry(v[0].clone()).or_default();
            runs.push((v[1].clone(), v[2].clone(), v[3].clone()));
            if runs.len() > HISTORY_RUNS {
                runs.remove(0);
            }
        }
    }
    out
}

/// Draws each monitor's charts from the metric history, if any.
async fn read_charts(ctx: &super::context::Context, compiled: &crate::compile::Compiled) -> Charts {
    let mut out = Charts::new();
    if !compiled.assertions.iter().any(|a| a.monitor.is_some()) {
        return out;
    }
    let Ok(engine) = ctx.engine(Some(1)).await else { return out };
    let loaded = crate::quality::monitor::load(&engine, &ctx.warehouse).await;
    for a in &compiled.assertions {
        let Some(m) = a.monitor.as_deref() else { continue };
        out.insert(a.name.clone(), crate::docs::chart::monitor_charts(m, &loaded, CHART_BUCKETS, CHART_SERIES));
    }
    out
}

/// Serves the generated site on 127.0.0.1:`port` until interrupted.
pub fn serve(settings: &Settings, out: &Path, port: u16) -> Result<ExitCode, Error> {
    let dir = if out.is_absolute() { out.to_path_buf() } else { settings.project.root.join(out) };
    if !dir.join("index.html").is_file() {
        return Err(Error::Usage {
            message: format!("no docs site in `{}`", dir.display()),
            hint: Some("run `wh docs generate` first".into()),
        });
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::Usage {
        message: format!("cannot listen on 127.0.0.1:{port}: {e}"),
        hint: Some("pick another --port".into()),
    })?;
    eprintln!(
        "Serving {} on http://127.0.0.1:{}/ (Ctrl-C to stop)",
        dir.display(),
        listener.local_addr().map(|a| a.port()).unwrap_or(port)
    );
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/");
        let name = if path == "/" { "index.html" } else { path.trim_start_matches('/') };
        let (status, kind, body) = match (name.contains(".."), std::fs::read(dir.join(name))) {
            (false, Ok(body)) => {
                let kind = if name.ends_with(".js") { "text/javascript" } else { "text/html; charset=utf-8" };
                ("200 OK", kind, body)
            }
            _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
    }
    Ok(ExitCode::SUCCESS)
}
