//! The previous run's artifacts (`--state`, default the target path), read
//! into the few typed fields that `state:` and `result:` selectors and
//! `wh retry` use, as dbt-core's `PreviousState` does. A file that is
//! missing is `None`; one that does not parse is kept as an error that
//! names the file, line and column, and is raised when something needs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::GraphError;
use crate::diagnostic::Location;

/// `manifest.json`: each node's checksum.
#[derive(Debug, Default, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub nodes: BTreeMap<String, ManifestNode>,
}

#[derive(Debug, Deserialize)]
pub struct ManifestNode {
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Deserialize)]
pub struct Checksum {
    pub checksum: String,
}

/// `run_results.json`: the command that ran and each node's status.
#[derive(Debug, Default, Deserialize)]
pub struct RunResults {
    #[serde(default)]
    pub args: RunArgs,
    #[serde(default)]
    pub results: Vec<RunResult>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunArgs {
    #[serde(default)]
    pub which: String,
}

#[derive(Debug, Deserialize)]
pub struct RunResult {
    pub unique_id: String,
    pub status: String,
    /// wh's own keys, in the adapter's open map (absent in dbt's files).
    #[serde(default)]
    pub adapter_response: WhResponse,
}

#[derive(Debug, Default, Deserialize)]
pub struct WhResponse {
    /// `test` for an assertion.
    pub resource_type: Option<String>,
    /// For an assertion, the node it checks.
    pub attached_node: Option<String>,
}

impl RunResult {
    pub fn is_test(&self) -> bool {
        matches!(self.adapter_response.resource_type.as_deref(), Some("test" | "unit_test"))
            || self.unique_id.starts_with("test.")
            || self.unique_id.starts_with("unit_test.")
    }

    /// For an assertion, the node it checks (when wh wrote the file).
    pub fn attached_node(&self) -> Option<&str> {
        self.adapter_response.attached_node.as_deref()
    }
}

/// One artifact file: absent, unreadable (with why), or read.
#[derive(Debug)]
pub enum Artifact<T> {
    Missing,
    Invalid { message: String, location: Location },
    Read(T),
}

impl<T: DeserializeOwned> Artifact<T> {
    /// Reads `root/rel`; messages name `rel`.
    fn load(root: &Path, rel: &Path) -> Artifact<T> {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            return Artifact::Missing;
        };
        match serde_json::from_str(&text) {
            Ok(value) => Artifact::Read(value),
            Err(e) => {
                let why = e.to_string();
                let why = why.rsplit_once(" at line ").map_or(why.as_str(), |(w, _)| w);
                Artifact::Invalid {
                    message: format!("the previous run's `{}` is not a wh or dbt artifact: {why}", rel.display()),
                    location: Location::at(rel, e.line(), e.column()),
                }
            }
        }
    }
}

impl<T> Artifact<T> {
    /// The artifact, `None` when missing, an error when it did not parse.
    pub fn get(&self) -> Result<Option<&T>, GraphError> {
        match self {
            Artifact::Missing => Ok(None),
            Artifact::Read(v) => Ok(Some(v)),
            Artifact::Invalid { message, location } => {
                Err(GraphError::Artifact { message: message.clone(), location: location.clone() })
            }
        }
    }
}

/// The previous run's artifacts.
#[derive(Debug)]
pub struct Previous {
    /// Where they were read from, for messages.
    pub dir: PathBuf,
    pub manifest: Artifact<Manifest>,
    pub run_results: Artifact<RunResults>,
}

impl Previous {
    /// Reads `manifest.json` and `run_results.json` in `dir`; messages
    /// name them relative to the project folder `root` where they are in it.
    pub fn read(root: &Path, dir: &Path) -> Previous {
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        Previous {
            dir: dir.to_path_buf(),
            manifest: Artifact::load(root, &rel.join("manifest.json")),
            run_results: Artifact::load(root, &rel.join("run_results.json")),
        }
    }

    /// No previous artifacts (tests, commands without selectors).
    pub fn none() -> Previous {
        Previous { dir: PathBuf::new(), manifest: Artifact::Missing, run_results: Artifact::Missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_manifest_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), "{\n  \"nodes\": [1,\n").unwrap();
        let previous = Previous::read(dir.path(), dir.path());
        let err = previous.manifest.get().unwrap_err();
        let GraphError::Artifact { message, location } = err else { panic!("{err:?}") };
        assert!(message.contains("`manifest.json` is not a wh or dbt artifact: invalid type"), "{message}");
        assert_eq!((location.line, location.file.ends_with("manifest.json")), (2, true));
        assert!(previous.run_results.get().unwrap().is_none());
    }

    #[test]
    fn dbt_run_results_read() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"args": {"which": "build"}, "results": [
            {"unique_id": "model.p.a", "status": "error", "extra": 1},
            {"unique_id": "test.p.t", "status": "fail"}]}"#;
        std::fs::write(dir.path().join("run_results.json"), text).unwrap();
        let previous = Previous::read(dir.path(), dir.path());
        let results = previous.run_results.get().unwrap().unwrap();
        assert_eq!(results.args.which, "build");
        assert_eq!(results.results.iter().map(RunResult::is_test).collect::<Vec<_>>(), [false, true]);
    }
}
