//! Alerts after a build or run: a JSON summary POSTed to a webhook and/or
//! given to a shell command on its standard input, when the run failed,
//! warned, or (if asked) always. Exit codes stay the contract for
//! schedulers: an alert never changes them, and a failed delivery is a
//! warning.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value as Json};

use crate::artifacts::Invocation;
use crate::project::config::{AlertOn, AlertsFile};
use crate::quality::run::Outcome;
use crate::quality::Status as TestStatus;
use crate::results::{NodeResult, Status};

/// Returns how the run went: failure (a model failed, or an assertion
/// failed or could not run), warning (an assertion warned), or success.
pub fn level(models: &[NodeResult], outcomes: &[&Outcome]) -> AlertOn {
    let failed = models.iter().any(|r| r.status == Status::Error)
        || outcomes.iter().any(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error));
    if failed {
        AlertOn::Failure
    } else if outcomes.iter().any(|o| o.status == TestStatus::Warn) {
        AlertOn::Warning
    } else {
        AlertOn::Success
    }
}

/// Tells whether the run's only problems are monitors' anomalies that go
/// on from an earlier run without worsening: alerted once, not every run.
pub fn only_ongoing(models: &[NodeResult], outcomes: &[&Outcome]) -> bool {
    let problems: Vec<&&Outcome> = outcomes.iter().filter(|o| o.status != TestStatus::Pass).collect();
    models.iter().all(|r| r.status != Status::Error)
        && !problems.is_empty()
        && problems.iter().all(|o| crate::quality::monitor::only_ongoing(o))
}

/// Builds the summary a webhook or command receives.
pub fn summary(inv: &Invocation, models: &[NodeResult], outcomes: &[&Outcome], elapsed: f64, warehouse: &str) -> Json {
    let count = |s: Status| models.iter().filter(|r| r.status == s).count();
    let checks = |s: TestStatus| outcomes.iter().filter(|o| o.status == s).count();
    let status = match level(models, outcomes) {
        AlertOn::Failure => "failure",
        AlertOn::Warning => "warning",
        AlertOn::Success => "success",
    };
    json!({
        "status": status,
        "project": inv.project,
        "target": inv.target,
        "command": inv.command,
        "invocation_id": inv.id,
        "started_at": inv.started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "elapsed_s": elapsed,
        "user": inv.user,
        "host": inv.host,
        "warehouse": warehouse,
        "models": {
            "built": models.iter().filter(|r| r.status == Status::Success && !r.reused).count(),
            "up_to_date": models.iter().filter(|r| r.reused).count(),
            "error": count(Status::Error),
            "skipped": count(Status::Skipped),
        },
        "failed_models": models.iter().filter(|r| r.status == Status::Error).map(|r| json!({
            "name": r.name,
            "message": r.message,
        })).collect::<Vec<_>>(),
        "assertions": {
            "pass": checks(TestStatus::Pass),
            "warn": checks(TestStatus::Warn),
            "fail": checks(TestStatus::Fail),
            "error": checks(TestStatus::Error),
        },
        "problems": outcomes.iter().filter(|o| o.status != TestStatus::Pass).map(|o| problem(o)).collect::<Vec<_>>(),
    })
}

/// Describes a failing or warning assertion; a monitor's with its
/// anomalies (metric, dimension value, expected band, actual).
fn problem(o: &Outcome) -> Json {
    let mut p = json!({
        "assertion": o.assertion.name,
        "on": o.assertion.subject.name(),
        "status": o.status.as_str(),
        "failing_rows": o.failing,
        "message": o.message,
    });
    if let (Some(m), Some(f)) = (&o.assertion.monitor, &o.findings) {
        p["anomalies"] = crate::quality::monitor::anomalies_json(m, f, 20);
    }
    p
}

/// Sends the summary where `alerts` says, if the run's status is one it
/// alerts on. Returns what could not be delivered.
pub fn send(alerts: &AlertsFile, summary: &Json, level: AlertOn, root: &Path) -> Vec<String> {
    let on = alerts.on.clone().unwrap_or_else(|| vec![AlertOn::Failure]);
    if !on.contains(&level) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let url = alerts.webhook.clone().or_else(|| alerts.webhook_env.as_ref().and_then(|v| std::env::var(v).ok()));
    if let Some(url) = url {
        if let Err(e) = crate::storage::http::post_json(&url, summary, None) {
            problems.push(format!("the alert webhook was not reached: {e}"));
        }
    } else if let Some(var) = &alerts.webhook_env {
        problems.push(format!("alerts.webhook_env names `{var}`, which is not set"));
    }
    if let Some(command) = &alerts.command {
        let run = || -> std::io::Result<std::process::ExitStatus> {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(root)
                .env("WH_ALERT_STATUS", summary["status"].as_str().unwrap_or_default())
                .stdin(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(serde_json::to_string_pretty(summary).unwrap_or_default().as_bytes())?;
            }
            child.wait()
        };
        match run() {
            Ok(status) if status.success() => {}
            Ok(status) => problems.push(format!("the alert command `{command}` exited with {status}")),
            Err(e) => problems.push(format!("the alert command `{command}` could not run: {e}")),
        }
    }
    problems
}
