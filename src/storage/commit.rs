//! A build's tables become visible together, at its end. While the build
//! runs each table that passed its checks is staged (locally a hidden
//! temporary file beside its final name; on S3 an object under
//! `_wh/staged/<run>/`), and the models after it read the staged version.
//! At the end the build writes a journal (`_wh/journal.json`: what goes
//! where), publishes every entry (a rename; on S3 a server-side copy), and
//! removes the journal. A process that dies after the journal is written
//! leaves the rest to the next command that takes the lock, which
//! completes the journal (rolls forward) before anything else; one that
//! dies before leaves the previous warehouse as it was.

use serde::{Deserialize, Serialize};

use super::*;
use crate::failpoint;

/// The journal of a build's publishing step, relative to the warehouse.
pub const JOURNAL: &str = "_wh/journal.json";
/// Where an S3 warehouse's staged objects live until they are published.
pub const STAGED: &str = "_wh/staged";

/// One staged file and where it is published.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The staged file, relative to the warehouse.
    pub staged: String,
    /// Its final place, relative to the warehouse.
    pub dest: String,
}

#[derive(Serialize, Deserialize)]
struct Journal {
    run_id: String,
    entries: Vec<Entry>,
}

/// What a roll-forward completed: the run that left the journal and how
/// many of its files were still to publish.
pub struct RolledForward {
    pub run_id: String,
    pub published: usize,
}

/// Why publishing stopped part-way; the journal stays for the next command.
#[derive(Debug, thiserror::Error)]
#[error("publishing stopped after {done} of {total} file(s): {source}")]
pub struct CommitError {
    pub done: usize,
    pub total: usize,
    /// The journal was written: the next command completes the step.
    pub journal_written: bool,
    pub source: std::io::Error,
}

impl Warehouse {
    /// Stages a file written for `rel` (by [`publish::stage`] or a
    /// [`publish::ParquetSink`]) for the build's publishing step. Locally the
    /// file stays where it is; on S3 it is uploaded under `_wh/staged/<run>/`.
    /// Returns the entry and where readers read the staged version.
    pub async fn stage_for_commit(&self, staged: &Staged, rel: &str, run: &str) -> std::io::Result<(Entry, String)> {
        failpoint::hit("stage.written")?;
        match self {
            Warehouse::Local(root) => {
                let inside = staged.temp.strip_prefix(root).map_err(|_| {
                    std::io::Error::other(format!("`{}` is not inside the warehouse", staged.temp.display()))
                })?;
                let entry = Entry { staged: inside.to_string_lossy().into_owned(), dest: rel.to_string() };
                Ok((entry, staged.temp.to_string_lossy().into_owned()))
            }
            Warehouse::Remote(r) => {
                let staged_rel = format!("{STAGED}/{run}/{rel}");
                upload(r, &staged.temp, &Self::key(r, &staged_rel)).await.map_err(StorageError::io)?;
                let location = self.location(&staged_rel);
                Ok((Entry { staged: staged_rel, dest: rel.to_string() }, location))
            }
        }
    }

    /// Stages `bytes` for `rel`, as [`Warehouse::stage_for_commit`] does a file.
    pub async fn stage_bytes(&self, rel: &str, bytes: Vec<u8>, run: &str) -> std::io::Result<Entry> {
        let staged = match self {
            Warehouse::Local(root) => publish::stage_bytes(&root.join(rel), &bytes)?,
            Warehouse::Remote(r) => publish::stage_bytes(&r.scratch.path().join(rel), &bytes)?,
        };
        let result = self.stage_for_commit(&staged, rel, run).await.map(|(entry, _)| entry);
        if matches!(self, Warehouse::Remote(_)) {
            publish::discard(&staged);
        }
        result
    }

    /// Publishes a build's staged files together: the journal first, then
    /// each file, then the journal is removed. Returns how many files.
    pub async fn commit(&self, run_id: &str, entries: Vec<Entry>) -> Result<usize, CommitError> {
        let total = entries.len();
        let before = |source| CommitError { done: 0, total, journal_written: false, source };
        let after = |done, source| CommitError { done, total, journal_written: true, source };
        if entries.is_empty() {
            return Ok(0);
        }
        failpoint::hit("commit.before_journal").map_err(before)?;
        let journal = Journal { run_id: run_id.to_string(), entries };
        let text = serde_json::to_vec_pretty(&journal).map_err(|e| before(e.into()))?;
        self.put(JOURNAL, text).await.map_err(before)?;
        failpoint::hit("commit.after_journal").map_err(|e| after(0, e))?;
        self.apply(&journal).await.map_err(|(done, e)| after(done, e))?;
        Ok(total)
    }

    /// Completes a journal an interrupted command left, before anything
    /// else touches the warehouse (the caller holds the lock).
    pub async fn roll_forward(&self) -> std::io::Result<Option<RolledForward>> {
        let Some(bytes) = self.get(JOURNAL).await? else { return Ok(None) };
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::other(format!("the journal `{}` does not parse: {e}", self.location(JOURNAL)))
        })?;
        let published = self.apply(&journal).await.map_err(|(_, e)| e)?;
        Ok(Some(RolledForward { run_id: journal.run_id, published }))
    }

    /// Publishes each entry of `journal` whose staged file is still there
    /// (one already published is not), then removes the journal and, on
    /// S3, the staged objects. Returns how many it published, or after how
    /// many it stopped.
    async fn apply(&self, journal: &Journal) -> Result<usize, (usize, std::io::Error)> {
        let mut published = 0;
        for (done, entry) in journal.entries.iter().enumerate() {
            failpoint::hit("commit.before_publish").map_err(|e| (done, e))?;
            if self.publish_entry(entry).await.map_err(|e| (done, e))? {
                published += 1;
            }
            failpoint::hit("commit.after_publish").map_err(|e| (done + 1, e))?;
        }
        let all = journal.entries.len();
        failpoint::hit("commit.before_cleanup").map_err(|e| (all, e))?;
        if let Warehouse::Remote(_) = self {
            for entry in &journal.entries {
                self.delete(&entry.staged).await.map_err(|e| (all, e))?;
            }
        }
        self.delete(JOURNAL).await.map_err(|e| (all, e))?;
        Ok(published)
    }

    /// Publishes one entry; returns false when its staged file is gone
    /// (published before an interruption).
    async fn publish_entry(&self, entry: &Entry) -> std::io::Result<bool> {
        match self {
            Warehouse::Local(root) => {
                let staged = root.join(&entry.staged);
                if !staged.exists() {
                    return Ok(false);
                }
                let dest = root.join(&entry.dest);
                publish::publish(&Staged { temp: staged, dest, rows: 0, bytes: 0 })?;
                Ok(true)
            }
            Warehouse::Remote(r) => {
                let (from, to) = (Self::key(r, &entry.staged), Self::key(r, &entry.dest));
                match r.store.copy(&from, &to).await {
                    Ok(()) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(std::io::Error::other(format!("{}: {}", self.location(&entry.dest), describe(&e)))),
                }
            }
        }
    }
}
