//! Helpers for integration tests: copy the example project to a temp dir,
//! run the real `wh` binary, read Parquet back as rows of text.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The `wh` binary cargo built for these tests.
pub fn wh_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wh"))
}

/// A command running the `wh` binary.
pub fn wh_command() -> std::process::Command {
    std::process::Command::new(wh_bin())
}

/// The repository root (the example project).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `--vars` that point the example project at the golden fixture.
pub fn golden_vars() -> String {
    format!("{{raw_root: '{}'}}", repo().join("tests/fixtures/golden/raw").display())
}

/// A temporary copy of the example project (no data, no warehouse).
pub struct TempProject {
    pub dir: tempfile::TempDir,
}

impl TempProject {
    /// Copies the example project's files into a new temp dir.
    pub fn example() -> TempProject {
        let dir = tempfile::tempdir().expect("tempdir");
        for item in ["wh_project.yml", "sources.yml", "models", "macros", "snapshots", "data/cdp"] {
            copy(&repo().join(item), &dir.path().join(item));
        }
        TempProject { dir }
    }

    /// A fixture project from `tests/fixtures/projects/<name>`: a whole
    /// project when the folder has a `wh_project.yml`, else an overlay
    /// copied over the example project.
    pub fn fixture(name: &str) -> TempProject {
        let folder = repo().join("tests/fixtures/projects").join(name);
        assert!(folder.is_dir(), "no fixture folder {}", folder.display());
        let p = if folder.join("wh_project.yml").exists() { TempProject::empty() } else { TempProject::example() };
        copy(&folder, p.path());
        p
    }

    /// What a `wh` run printed, for a snapshot: the exit code, stdout and
    /// stderr, with this project's temp path written `[project]`.
    pub fn report(&self, out: &Output) -> String {
        let text = format!(
            "exit code: {}\n--- stdout\n{}--- stderr\n{}",
            out.status.code().map_or("signal".to_string(), |c| c.to_string()),
            stdout(out),
            stderr(out)
        );
        text.replace(&self.path().display().to_string(), "[project]")
    }

    /// An empty project folder.
    pub fn empty() -> TempProject {
        TempProject { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Runs `wh` in the project with `args`.
    pub fn wh(&self, args: &[&str]) -> Output {
        wh_command().current_dir(self.path()).env("NO_COLOR", "1").args(args).output().unwrap()
    }

    /// Reads the OpenLineage events the last run wrote.
    pub fn lineage_events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.path().join("target/openlineage.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Reads a warehouse table as rows of display strings.
    pub fn rows(&self, rel: &str) -> Vec<Vec<String>> {
        read_rows(&self.path().join("warehouse").join(rel))
    }

    /// Reads a warehouse table's schema.
    pub fn schema(&self, rel: &str) -> Schema {
        read_batches(&self.path().join("warehouse").join(rel)).0
    }
}

/// Copies a file or folder recursively.
pub fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// The SHA-256 of a file, in hex.
pub fn checksum(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads all batches of a Parquet file.
pub fn read_batches(path: &Path) -> (Schema, Vec<RecordBatch>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().as_ref().clone();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (schema, batches)
}

/// Reads a Parquet file as rows of display strings (NULL is "NULL").
pub fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let (_, batches) = read_batches(path);
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in &batches {
        let formatters: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for i in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows
}

/// Builds rows from string literals for comparison.
pub fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect()
}

/// Asserts the command exited with `code`, showing its output otherwise.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Column names of a schema.
pub fn columns(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// The Parquet tables of a warehouse (not the run records, not snapshots,
/// whose rows carry the build time), relative to it, sorted.
pub fn tables(warehouse: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(warehouse)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().strip_prefix(warehouse).unwrap().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".parquet") && !p.starts_with("_wh") && !p.starts_with("snapshots"))
        .collect();
    out.sort();
    out
}
