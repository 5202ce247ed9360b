//! The fault-injection matrix: every failpoint of `src/failpoint.rs`
//! triggered as a crash (the process ends there, as under kill -9) and as
//! an I/O error, on a local warehouse (the S3 half of the matrix is
//! tests/readers/test_faults_s3.py). After each case: every table equals
//! its previous version or its new one, whole; a crash never leaves a mix
//! of the two builds once the next command has run; the state and history
//! parse; the next build succeeds, equals a build without faults, and
//! leaves no temporary, staged or journal file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

const NEW: &str = "{events: 'raw/new.csv'}";
const OLD: &str = "{events: 'raw/old.csv'}";
const CRASH_EXIT: i32 = wh::failpoint::CRASH_EXIT;

/// Failpoints a build passes after its publishing step's journal is
/// written: a crash there leaves the new build to roll forward.
const AFTER_JOURNAL: &[&str] = &[
    "commit.after_journal",
    "commit.before_publish",
    "commit.after_publish",
    "commit.before_cleanup",
    "history.write",
    "state.write",
    "artifacts.write",
];

/// A table's content: a file's checksum, or for a table whose files differ
/// between equal builds (a snapshot's timestamps, a partitioned or Delta
/// table's file names) its rows.
type Tables = BTreeMap<String, String>;

fn sorted_rows(files: impl IntoIterator<Item = std::path::PathBuf>, keep: &[usize]) -> String {
    let mut rows: Vec<Vec<String>> = files
        .into_iter()
        .flat_map(|f| read_rows(&f))
        .map(|r| if keep.is_empty() { r } else { keep.iter().map(|i| r[*i].clone()).collect() })
        .collect();
    rows.sort();
    format!("{rows:?}")
}

/// The live files of a Delta table: those its latest commit adds (each
/// build overwrites the whole table).
fn delta_files(table: &Path) -> Vec<std::path::PathBuf> {
    let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    let last = std::fs::read_to_string(commits.last().unwrap()).unwrap();
    last.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|a| a["add"]["path"].as_str().map(|p| table.join(p)))
        .collect()
}

/// Reads every table of the fixture's warehouse.
fn tables(project: &Path) -> Tables {
    let w = project.join("warehouse");
    let mut out = Tables::new();
    for rel in ["stg_events.parquet", "events_inc.parquet", "by_day.parquet", "by_day.csv"] {
        if w.join(rel).exists() {
            out.insert(rel.into(), checksum(&w.join(rel)));
        }
    }
    let pointer = w.join("by_day_parts/_current.json");
    if let Ok(text) = std::fs::read_to_string(&pointer) {
        let pointer: serde_json::Value = serde_json::from_str(&text).unwrap();
        let files =
            pointer["files"].as_array().unwrap().iter().map(|f| w.join("by_day_parts").join(f.as_str().unwrap()));
        out.insert("by_day_parts".into(), sorted_rows(files, &[]));
    }
    if w.join("events_delta/_delta_log").is_dir() {
        out.insert("events_delta".into(), sorted_rows(delta_files(&w.join("events_delta")), &[]));
    }
    let snapshot = w.join("snapshots/snp_events.parquet");
    if snapshot.exists() {
        // id, v, and whether the version is current (dbt_valid_to empty).
        let rows: Vec<Vec<String>> = read_rows(&snapshot);
        let schema = read_batches(&snapshot).0;
        let to = schema.index_of("dbt_valid_to").unwrap();
        let mut cells: Vec<String> = rows.iter().map(|r| format!("{}|{}|{}", r[0], r[1], r[to].is_empty())).collect();
        cells.sort();
        out.insert("snp_events".into(), cells.join(","));
    }
    out
}

/// Files no run may leave behind once a build has completed.
fn leftovers(project: &Path) -> Vec<String> {
    walkdir::WalkDir::new(project.join("warehouse"))
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .filter(|p| {
            p.contains(".wh-tmp-")
                || p.ends_with("_wh/journal.json")
                || p.contains("_wh/staged")
                || p.contains("_wh/scratch")
        })
        .collect()
}

/// The run records a build leaves parse: the state, the last results,
/// every history file.
fn assert_records_parse(project: &Path, case: &str) {
    let w = project.join("warehouse/_wh");
    for file in ["state.json", "run_results.json"] {
        if let Ok(text) = std::fs::read_to_string(w.join(file)) {
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{case}: {file}: {e}"));
        }
    }
    for e in walkdir::WalkDir::new(w.join("history")).into_iter().filter_map(Result::ok) {
        if e.path().extension().is_some_and(|x| x == "parquet") && !e.path().to_string_lossy().contains(".wh-tmp-") {
            read_rows(e.path());
        }
    }
}

fn copy_project(from: &Path) -> TempProject {
    let p = TempProject::empty();
    copy(from, p.path());
    p
}

fn run(p: &Path, args: &[&str], failpoints: Option<&str>) -> std::process::Output {
    let mut cmd = wh_command();
    cmd.current_dir(p).env("NO_COLOR", "1").args(args);
    match failpoints {
        Some(f) => cmd.env("FAILPOINTS", f),
        None => cmd.env_remove("FAILPOINTS"),
    };
    cmd.output().unwrap()
}

struct Baseline {
    /// A warehouse built from the old data.
    built: TempProject,
    old: Tables,
    new: Tables,
}

fn baseline() -> Baseline {
    let built = TempProject::fixture("faults");
    assert_exit(&built.wh(&["build", "--vars", OLD]), 0);
    let reference = copy_project(built.path());
    assert_exit(&reference.wh(&["build", "--vars", NEW]), 0);
    let (old, new) = (tables(built.path()), tables(reference.path()));
    assert_eq!(old.len(), 7, "{old:?}");
    for (rel, digest) in &old {
        assert_ne!(digest, &new[rel], "{rel}: the new data must change every table");
    }
    Baseline { built, old, new }
}

/// One case of the matrix; returns its line for the report.
fn case(base: &Baseline, failpoint: &str, mode: &str) -> String {
    let name = format!("{failpoint} x {mode}");
    let p = copy_project(base.built.path());
    let out = run(p.path(), &["build", "--vars", NEW], Some(&format!("{failpoint}=return({mode})")));
    let err = stderr(&out);
    // The fault landed where it claims, and the exit says so.
    let code = out.status.code();
    if mode == "crash" {
        assert!(err.contains(&format!("failpoint `{failpoint}`: crashing")), "{name}: not reached\n{err}");
        assert_eq!(code, Some(CRASH_EXIT), "{name}\n{err}");
    } else {
        assert!(err.contains(&format!("injected I/O error at failpoint `{failpoint}`")), "{name}: not named\n{err}");
        // A fault before the run starts is a usage error; any later one
        // fails the build.
        let expected = if failpoint == "lock.taken" { 2 } else { 1 };
        assert_eq!(code, Some(expected), "{name}\n{err}");
    }
    let faulted = tables(p.path());
    for (rel, digest) in &faulted {
        assert!(digest == &base.old[rel] || digest == &base.new[rel], "{name}: {rel} is neither version");
    }
    assert_eq!(faulted.len(), base.old.len(), "{name}: a table went missing");
    assert_records_parse(p.path(), &name);
    // The next command completes or discards the interrupted publishing;
    // after a crash no build's tables are mixed with the other's.
    let next = run(p.path(), &["run", "--select", "v_events", "--vars", NEW], None);
    assert_exit(&next, 0);
    let settled = tables(p.path());
    if mode == "crash" {
        let expected = if AFTER_JOURNAL.contains(&failpoint) { &base.new } else { &base.old };
        for (rel, digest) in settled.iter().filter(|(rel, _)| *rel != "events_delta") {
            assert_eq!(digest, &expected[rel], "{name}: {rel} mixes the builds after the next command");
        }
    }
    assert!(leftovers(p.path()).is_empty(), "{name}: {:?}", leftovers(p.path()));
    // The next build succeeds and equals a build without faults.
    let again = run(p.path(), &["build", "--vars", NEW], None);
    assert_exit(&again, 0);
    assert_eq!(tables(p.path()), base.new, "{name}: the next build differs from a build without faults");
    assert!(leftovers(p.path()).is_empty(), "{name}: {:?}", leftovers(p.path()));
    format!("{name}: exit {code:?}")
}

#[test]
fn every_failpoint_as_a_crash_and_an_io_error_leaves_each_table_whole_and_the_next_build_right() {
    let base = baseline();
    let cases: Vec<(&str, &str)> = wh::failpoint::ALL.iter().flat_map(|f| [(*f, "crash"), (*f, "io")]).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let report = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((f, mode)) = cases.get(i) else { break };
                let line = case(&base, f, mode);
                report.lock().unwrap().push(line);
            });
        }
    });
    let mut report = report.into_inner().unwrap();
    report.sort();
    assert_eq!(report.len(), wh::failpoint::ALL.len() * 2);
    eprintln!("{} local fault cases:\n{}", report.len(), report.join("\n"));
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// The disk filling up: the warehouse is a small tmpfs (mounted as root,
/// as in CI; elsewhere the test says it did not run), filled until the new
/// build's files do not fit.
#[test]
fn a_full_disk_fails_the_build_clearly_and_publishes_nothing_torn() {
    if unsafe_uid() != 0 {
        eprintln!("a_full_disk...: not run (mounting a tmpfs needs root; CI runs as root)");
        return;
    }
    let p = TempProject::example();
    let warehouse = p.path().join("warehouse");
    std::fs::create_dir_all(&warehouse).unwrap();
    let status =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&warehouse).status();
    assert!(status.is_ok_and(|s| s.success()), "cannot mount a tmpfs as root");
    let _mounted = Tmpfs(warehouse.clone());
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let before: Tables = walk_tables(&warehouse);
    // Leave 64 KiB: the new build's tables (scale 0.3) need far more.
    let raw = tempfile::tempdir().unwrap();
    wh::datagen::generate(raw.path(), 0.3, 4).unwrap();
    let fill = free_bytes(&warehouse).saturating_sub(64 * 1024);
    std::fs::write(warehouse.join("filler"), vec![0u8; fill as usize]).unwrap();
    let vars = format!("{{raw_root: '{}'}}", raw.path().display());
    let out = p.wh(&["build", "--vars", &vars]);
    let err = stderr(&out);
    assert_exit(&out, 1);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("hint: the disk is full"), "{err}");
    // Each table is its previous file or a whole new one (the models that
    // fitted are published at the end, as any build's), and nothing
    // temporary is left.
    let after = walk_tables(&warehouse);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    let changed: Vec<&String> = after.keys().filter(|rel| after[*rel] != before[*rel]).collect();
    for rel in &changed {
        if rel.ends_with(".parquet") {
            read_rows(&warehouse.join(rel));
        }
    }
    assert!(changed.len() < before.len(), "every table was published: the disk was not full");
    std::fs::remove_file(warehouse.join("filler")).unwrap();
    assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    assert!(leftovers(p.path()).is_empty(), "{:?}", leftovers(p.path()));
    assert_ne!(walk_tables(&warehouse), before);
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Every table file of a warehouse (outside `_wh/`) with its checksum.
fn walk_tables(warehouse: &Path) -> Tables {
    walkdir::WalkDir::new(warehouse)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(warehouse).unwrap().display().to_string())
        .filter(|rel| !rel.starts_with("_wh/") && rel != "filler")
        .map(|rel| (rel.clone(), checksum(&warehouse.join(&rel))))
        .collect()
}
