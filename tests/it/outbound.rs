//! Outbound HTTP (OpenLineage, alert webhooks) cannot hold a build, and
//! never repeats the secrets of its URLs: an endpoint that accepts the
//! connection and never answers costs one bounded wait, the build's exit
//! code is its own, and the warning names scheme, host and port only.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;

/// A loopback endpoint that takes connections (the kernel's backlog
/// completes the handshake) and never answers.
fn silent_endpoint() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn build(p: &TempProject, env: &[(&str, String)]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let mut cmd = wh_command();
    cmd.current_dir(p.path()).env("WH_HTTP_TIMEOUT", "1s").args(["build", "--vars", &golden_vars()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out, started.elapsed())
}

#[test]
fn a_silent_openlineage_endpoint_costs_one_timeout_and_no_secret() {
    let (_listener, port) = silent_endpoint();
    let p = TempProject::example();
    let url = format!("http://ol-user:s3cret-pass@127.0.0.1:{port}/ns?api_key=k3y");
    let (out, took) = build(&p, &[("OPENLINEAGE_URL", url)]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    let warning =
        err.lines().find(|l| l.contains("OpenLineage events not delivered")).unwrap_or_else(|| panic!("{err}"));
    assert!(warning.contains(&format!("http://127.0.0.1:{port}")), "{warning}");
    assert!(warning.to_lowercase().contains("timeout") || warning.contains("timed out"), "{warning}");
    for secret in ["s3cret-pass", "ol-user", "k3y"] {
        assert!(!err.contains(secret) && !stdout(&out).contains(secret), "`{secret}` leaked:\n{err}");
    }
    // The events are still written locally, whole.
    assert!(p.lineage_events().len() > 10);
    // One wait of 1 s for ~70 events, not one per event (the build itself
    // takes a few seconds on the golden data).
    assert!(took < Duration::from_secs(60), "the build took {took:?}");
}

#[test]
fn a_silent_alert_webhook_keeps_the_exit_code_and_no_secret() {
    let (_listener, port) = silent_endpoint();
    let p = TempProject::example();
    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write("wh_project.yml", &format!("{project}\nalerts:\n  on: [warning, failure]\n  webhook_env: TEST_HOOK\n"));
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/XXXXsecrettoken");
    let (out, _) = build(&p, &[("TEST_HOOK", url)]);
    // The golden data warns: the alert is due, and not delivered.
    assert_exit(&out, 0);
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("alert webhook was not reached")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&format!("http://127.0.0.1:{port} did not take the request")), "{line}");
    assert!(!err.contains("XXXXsecrettoken") && !err.contains("/services/"), "the webhook path leaked:\n{err}");
}
