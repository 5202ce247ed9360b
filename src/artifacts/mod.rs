//! `target/manifest.json` and `target/run_results.json`, with dbt's field
//! names where they apply, keys in sorted order so that two runs of the same
//! project differ only in timestamps and ids; and in [`junit`] the JUnit XML
//! report of a build or test run.

pub mod junit;
mod manifest;

pub use manifest::write_manifest;

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value as Json};

use crate::quality::run::Outcome;
use crate::quality::Subject;
use crate::results::NodeResult;
use crate::storage::publish::write_atomic;

/// Facts about one invocation, shared by its artifacts.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub project: String,
    pub target: String,
    pub user: String,
    pub host: String,
}

impl Invocation {
    /// Starts the invocation record of `command` on `project`, with the id
    /// and start time its templates saw.
    pub fn new(command: &str, project: &crate::project::Project) -> Invocation {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Invocation {
            id: project.invocation_id.clone(),
            command: command.into(),
            started_at: project.run_started_at,
            project: project.name.clone(),
            target: project.target.name.clone(),
            user,
            host,
        }
    }

    /// dbt's `metadata` block. dbt's schemas allow no other keys there, so
    /// wh's own facts (its version, the command, target, user and host)
    /// are in `env`, the one open map.
    fn metadata(&self, schema: &str) -> Json {
        json!({
            "dbt_schema_version": schema,
            "generated_at": ts(&Utc::now()),
            "invocation_id": self.id,
            "invocation_started_at": ts(&self.started_at),
            "env": {
                "WH_VERSION": env!("CARGO_PKG_VERSION"),
                "WH_COMMAND": self.command,
                "WH_TARGET": self.target,
                "WH_USER": self.user,
                "WH_HOST": self.host,
            },
        })
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Builds run results: one entry per model and per assertion, sorted by id.
/// The keys are dbt's (`run-results/v6`, which allows no others); what wh
/// adds of its own is in `adapter_response`, the adapter's open map.
pub fn run_results(inv: &Invocation, results: &[NodeResult], tests: &[&Outcome], elapsed: f64, args: Json) -> Json {
    let mut entries: Vec<Json> = results.iter().map(model_result).collect();
    entries.extend(tests.iter().map(|o| test_result(&inv.project, o)));
    entries.sort_by(|a, b| a["unique_id"].as_str().cmp(&b["unique_id"].as_str()));
    json!({
        "metadata": inv.metadata("https://schemas.getdbt.com/dbt/run-results/v6.json"),
        "results": entries,
        "elapsed_time": elapsed,
        "args": args,
    })
}

/// wh runs nodes as tasks on one scheduler, not on numbered threads.
const THREAD_ID: &str = "main";

fn model_result(r: &NodeResult) -> Json {
    json!({
        "unique_id": r.unique_id,
        "status": r.status.as_str(),
        "timing": [{
            "name": "execute",
            "started_at": ts(&r.started_at),
            "completed_at": ts(&r.completed_at),
        }],
        "execution_time": r.seconds,
        "thread_id": THREAD_ID,
        "adapter_response": {
            "rows_affected": r.rows,
            "bytes_written": r.bytes,
            "spilled_bytes": r.spilled_bytes,
            "materialized": r.materialized.as_str(),
            "output_path": r.output_path,
            "location": r.failure.as_ref().and_then(|f| f.location.as_ref()).map(|l| l.to_string()),
            "hint": r.failure.as_ref().and_then(|f| f.hint.clone()),
        },
        "message": r.message,
        "failures": Json::Null,
        "relation_name": crate::compile::relation(&r.name),
    })
}

fn test_result(project: &str, o: &Outcome) -> Json {
    let a = &o.assertion;
    json!({
        "unique_id": a.unique_id,
        "status": o.status.as_str(),
        "timing": [],
        "execution_time": o.seconds,
        "thread_id": THREAD_ID,
        "failures": o.failing,
        "message": o.message,
        "adapter_response": {
            "resource_type": if a.kind == crate::compile::unit_tests::UNIT_KIND { "unit_test" } else { "test" },
            "test_kind": a.kind,
            "attached_node": match &a.subject {
                Subject::Model(m) => format!("model.{project}.{m}"),
                Subject::Source(s) => format!("source.{project}.{s}"),
            },
            "column_name": a.column,
            "severity": a.severity.as_str(),
            "threshold": a.threshold_text(),
            "rows_scanned": o.scanned,
            "sample_path": o.sample,
        },
    })
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &Json) -> std::io::Result<()> {
    write_atomic(path, &json_bytes(value))
}

/// Returns `value` as pretty JSON with a final newline.
pub fn json_bytes(value: &Json) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}
