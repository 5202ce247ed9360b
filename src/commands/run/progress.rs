//! What a build prints as it goes: one line per model (or a JSON event
//! under `--log-format json`), under a progress bar on a terminal.

use std::collections::BTreeSet;

use crate::cli::LogFormat;
use crate::commands::Settings;
use crate::pipeline::Event;
use crate::quality::Status as TestStatus;
use crate::results::{NodeResult, Status};

/// The build's report of each model as it starts and ends.
pub(super) struct Progress<'a> {
    settings: &'a Settings,
    total: usize,
    /// The longest selected name: model names line up.
    width: usize,
    done: usize,
    running: BTreeSet<String>,
    /// On a terminal, a progress bar under the model lines; plain lines
    /// otherwise (a file, a pipe, --quiet, --log-format json).
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> Progress<'a> {
    pub fn new(settings: &'a Settings, selected: &BTreeSet<String>) -> Progress<'a> {
        let total = selected.len();
        Progress {
            settings,
            total,
            width: selected.iter().map(String::len).max().unwrap_or(0),
            done: 0,
            running: BTreeSet::new(),
            bar: settings.progress_bar(total as u64),
        }
    }

    /// Reports a model starting or ending.
    pub fn on(&mut self, event: Event) {
        let r = match event {
            Event::Started(name) => {
                self.running.insert(name.to_string());
                self.refresh();
                return;
            }
            Event::Finished(r) => r,
        };
        self.running.remove(&r.name);
        self.done += 1;
        let line = self.line(r);
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
                self.refresh();
            }
            None if self.settings.log_format == LogFormat::Json => self.settings.event(self.json(r)),
            None => self.settings.log(line),
        }
    }

    /// Clears the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(progress_message(&self.running, self.total - self.done - self.running.len()));
        }
    }

    /// `  3 of 12 OK    stg_orders  table   1,234 rows  0.12s  [2 checks: ...]`
    fn line(&self, r: &NodeResult) -> String {
        let detail = match (r.status, r.rows, r.merged) {
            _ if r.reused => format!("{:>17}", "up to date"),
            (Status::Success, Some(rows), Some(new)) => format!("{:>12} rows, {} new", thousands(rows), thousands(new)),
            (Status::Success, Some(1), None) => format!("{:>12} row ", 1),
            (Status::Success, Some(rows), None) => format!("{:>12} rows", thousands(rows)),
            _ => format!("{:>17}", ""),
        };
        let (warned, failed) = checks(r);
        let checks = match r.assertions.len() {
            0 => String::new(),
            n => format!(
                "  [{n} check{}: {} pass, {warned} warn, {failed} fail]",
                if n == 1 { "" } else { "s" },
                n - warned - failed
            ),
        };
        let spilled = match r.spilled_bytes {
            0 => String::new(),
            n => format!("  (spilled {})", megabytes(n)),
        };
        let (done, total, width) = (self.done, self.total, self.width);
        format!(
            "{done:>4} of {total} {:<5} {:<width$}  {:<11} {detail} {:>8.2}s{checks}{spilled}",
            status_word(r),
            r.name,
            r.materialized.as_str(),
            r.seconds
        )
    }

    /// The `model_finished` event of `--log-format json`.
    fn json(&self, r: &NodeResult) -> serde_json::Value {
        let (warned, failed) = checks(r);
        serde_json::json!({
            "event": "model_finished",
            "index": self.done,
            "total": self.total,
            "model": r.name,
            "materialized": r.materialized.as_str(),
            "status": status_word(r).to_lowercase(),
            "rows": r.rows,
            "new_rows": r.merged,
            "seconds": (r.seconds * 1000.0).round() / 1000.0,
            "checks": {"run": r.assertions.len(), "warn": warned, "fail": failed},
            "spilled_bytes": r.spilled_bytes,
            "message": r.message,
        })
    }
}

fn status_word(r: &NodeResult) -> &'static str {
    match r.status {
        Status::Success if r.reused => "REUSE",
        Status::Success => "OK",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

/// A model's assertions that warned, and that failed or could not run.
fn checks(r: &NodeResult) -> (usize, usize) {
    let warned = r.assertions.iter().filter(|o| o.status == TestStatus::Warn).count();
    let failed = r.assertions.iter().filter(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error)).count();
    (warned, failed)
}

/// Formats 1234567 as `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The progress bar's message: what runs, and how many wait.
fn progress_message(running: &BTreeSet<String>, remaining: usize) -> String {
    let names: Vec<&str> = running.iter().map(String::as_str).take(3).collect();
    let more = if running.len() > 3 { format!(" +{}", running.len() - 3) } else { String::new() };
    format!("{} running ({}{more}), {remaining} remaining", running.len(), names.join(", "))
}

/// Formats bytes as megabytes (10^6), e.g. `1,234.5 MB`.
pub fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
