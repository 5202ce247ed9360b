//! Skipping what has not changed. Each model gets a fingerprint: its
//! compiled SQL (comments and formatting ignored), its config, the
//! assertions that audit it, the fingerprints of the models it reads, and
//! the identity of the source files it reads (size and modification time
//! on disk, size and ETag on S3). A table whose fingerprint equals the one
//! recorded when it was last published, and whose output is still there,
//! is not rebuilt.
//!
//! The record is `_wh/state.json` in the warehouse: per model, the
//! fingerprint of its published version and whether that build ran its
//! assertions (`wh run` does not; `wh build` reuses only audited versions).

use std::collections::BTreeMap;
use std::path::Path;

use futures::TryStreamExt;
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::compile::checksum::normalize_sql;
use crate::compile::Compiled;
use crate::graph::Graph;
use crate::quality::Subject;
use crate::storage::{split_s3, Stores, Warehouse};

/// Where the record lives in the warehouse.
pub const STATE: &str = "_wh/state.json";

/// Returns the hex SHA-256 of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns whether normalized SQL calls a function whose result changes
/// from run to run (the clock, random numbers).
pub fn is_volatile(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["now()", "current_date", "current_time", "random()", "uuid()", "today()"].iter().any(|f| lower.contains(f))
}

/// Describes the files under a source location: path, size, and
/// modification time or ETag, sorted. Unreadable locations give their
/// error text, so that they never match a recorded fingerprint.
pub async fn source_identity(location: &str, stores: &Stores) -> String {
    if let Some((bucket, key)) = split_s3(location) {
        let Some(store) = stores.get(bucket) else { return format!("unreachable {location}") };
        let prefix = key.split(['*', '?', '[']).next().unwrap_or("");
        let listed: Result<Vec<_>, _> =
            store.list(Some(&object_store::path::Path::from(prefix.trim_end_matches('/')))).try_collect().await;
        return match listed {
            Ok(mut objects) => {
                objects.sort_by(|a, b| a.location.cmp(&b.location));
                objects
                    .iter()
                    .map(|o| format!("{} {} {}", o.location, o.size, o.e_tag.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Err(e) => format!("error {e}"),
        };
    }
    let glob_at = location.find(['*', '?', '[']).unwrap_or(location.len());
    let root = match location[..glob_at].rfind('/') {
        Some(i) if glob_at < location.len() => &location[..i],
        _ => location,
    };
    let mut files: Vec<String> = walkdir::WalkDir::new(Path::new(root))
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
            Some(format!("{} {} {modified}", e.path().display(), meta.len()))
        })
        .collect();
    if files.is_empty() {
        files.push(format!("missing {location}"));
    }
    files.join("\n")
}

/// Computes every model's fingerprint, parents first.
/// `extra` adds to a model's identity what is enforced when it is written
/// (its write policy, the forgotten identifiers it filters).
pub async fn fingerprints(
    compiled: &Compiled,
    graph: &Graph,
    stores: &Stores,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut sources: BTreeMap<&str, String> = BTreeMap::new();
    for (key, s) in &compiled.sources {
        sources.insert(key.as_str(), source_identity(&s.location, stores).await);
    }
    let mut audits: BTreeMap<&str, Vec<&crate::quality::Assertion>> = BTreeMap::new();
    for a in &compiled.assertions {
        if let Subject::Model(m) = &a.subject {
            audits.entry(m.as_str()).or_default().push(a);
        }
    }
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for name in graph.order() {
        let m = &compiled.models[name];
        let mut h = Sha256::new();
        let sql = normalize_sql(&m.sql);
        if is_volatile(&sql) {
            // Its result changes with time: never up to date.
            h.update(format!("volatile {:?}", std::time::SystemTime::now()));
        }
        h.update(sql.as_bytes());
        if let Some(incremental) = &m.incremental_sql {
            h.update(format!("\nincremental {}", normalize_sql(incremental)));
        }
        h.update(serde_json::to_string(&m.config).unwrap_or_default().as_bytes());
        if let Some(e) = extra.get(name) {
            h.update(format!("\nwritten under {e}"));
        }
        for a in audits.get(name.as_str()).into_iter().flatten() {
            h.update(format!("\n{} {} {:?} {:?} {:?}", a.name, a.failing_sql, a.severity, a.warn_if, a.error_if));
            if let Some(calc) = &a.fail_calc {
                h.update(format!(" fail_calc {calc}"));
            }
            for d in &a.depends_on {
                h.update(format!(" reads {d} {}", out.get(d).map(String::as_str).unwrap_or("")));
            }
        }
        for p in &graph.parents[name] {
            h.update(format!("\nparent {p} {}", out.get(p).map(String::as_str).unwrap_or("")));
        }
        for s in &m.sources {
            h.update(format!("\nsource {s}\n{}", sources.get(s.as_str()).map(String::as_str).unwrap_or("")));
        }
        let digest = h.finalize();
        out.insert(name.clone(), digest.iter().map(|b| format!("{b:02x}")).collect());
    }
    out
}

/// One model's record: the fingerprint of its published version.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub fingerprint: String,
    pub audited: bool,
    /// Row counts of its recent builds, oldest first (at most
    /// [`ROW_HISTORY`]), for `volume` checks.
    pub rows: Vec<u64>,
}

/// How many recent row counts a model's record keeps.
pub const ROW_HISTORY: usize = 10;

/// Fills in each `volume` check's baseline: the mean row count of its
/// model's last `runs` (default 5) builds, or 0 (nothing to compare with,
/// the check passes) before the first.
pub fn fill_volume_baselines(assertions: &mut [crate::quality::Assertion], entries: &BTreeMap<String, Entry>) {
    for a in assertions.iter_mut().filter(|a| a.kind == "volume") {
        let runs = a.params.get("runs").and_then(Json::as_u64).unwrap_or(5).max(1) as usize;
        let recent: Vec<u64> = entries
            .get(a.subject.name())
            .map(|e| e.rows.iter().rev().take(runs).copied().collect())
            .unwrap_or_default();
        let baseline = if recent.is_empty() { 0.0 } else { recent.iter().sum::<u64>() as f64 / recent.len() as f64 };
        a.failing_sql =
            a.failing_sql.replace(crate::compile::assertions::sql::VOLUME_BASELINE, &format!("{baseline:.1}"));
    }
}

/// Returns the selected table models whose published version is up to
/// date: same fingerprint as recorded, output still there, and (for a
/// build) recorded by a build that ran its assertions.
pub async fn reusable(
    compiled: &Compiled,
    selected: &std::collections::BTreeSet<String>,
    fingerprints: &BTreeMap<String, String>,
    recorded: &BTreeMap<String, Entry>,
    warehouse: &Warehouse,
    audit: bool,
) -> std::collections::BTreeSet<String> {
    let mut reuse = std::collections::BTreeSet::new();
    for name in selected {
        let Some(rel) = compiled.models[name].output_path() else { continue };
        let same = recorded.get(name).is_some_and(|e| e.fingerprint == fingerprints[name] && (e.audited || !audit));
        if same && warehouse.exists(&rel).await.unwrap_or(false) {
            reuse.insert(name.clone());
        }
    }
    reuse
}

/// Reads the record; empty when there is none or it is unreadable.
pub async fn load(warehouse: &Warehouse) -> BTreeMap<String, Entry> {
    let Ok(Some(bytes)) = warehouse.get(STATE).await else { return BTreeMap::new() };
    let Ok(Json::Object(models)) = serde_json::from_slice::<Json>(&bytes).map(|j| j["models"].clone()) else {
        return BTreeMap::new();
    };
    models
        .into_iter()
        .filter_map(|(name, e)| {
            let fingerprint = e["fingerprint"].as_str()?.to_string();
            let rows = e["rows"].as_array().map(|r| r.iter().filter_map(Json::as_u64).collect()).unwrap_or_default();
            Some((name, Entry { fingerprint, audited: e["audited"].as_bool().unwrap_or(false), rows }))
        })
        .collect()
}

/// Writes the record.
pub async fn save(warehouse: &Warehouse, entries: &BTreeMap<String, Entry>) -> std::io::Result<()> {
    let models: Map<String, Json> = entries
        .iter()
        .map(|(k, e)| (k.clone(), json!({"fingerprint": e.fingerprint, "audited": e.audited, "rows": e.rows})))
        .collect();
    let mut text = serde_json::to_vec_pretty(&json!({"models": models})).map_err(std::io::Error::other)?;
    text.push(b'\n');
    crate::failpoint::hit("state.write")?;
    warehouse.put(STATE, text).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_formatting_do_not_count() {
        let a = "select a,  b -- the key\nfrom t /* all rows */ where s = 'x  -- y'";
        let b = "select a, b\n\n   from t where s = 'x  -- y'";
        assert_eq!(normalize_sql(a), normalize_sql(b));
        assert!(is_volatile("select CURRENT_DATE - d from t") && !is_volatile("select d from t"));
    }
}
