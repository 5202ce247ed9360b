//! What a build has staged and not yet published: the files its
//! publishing step puts in place together at the end (see
//! `storage::commit`), and where the models after each table read its
//! staged version meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::exec::{Engine, ExecError};
use crate::results::{Failure, NodeResult, Status};
use crate::storage::{Entry, Warehouse, JOURNAL};

/// Where a staged version is read.
#[derive(Clone, Debug)]
pub(super) enum Readable {
    /// One Parquet file, whatever its name (a path or an `s3://` URL).
    File(String),
    /// A folder of Parquet files (a partitioned table's new version).
    Folder(String),
}

#[derive(Default)]
struct Inner {
    /// Each model's staged files, in the order they were staged.
    entries: Vec<(String, Entry)>,
    readable: BTreeMap<String, Readable>,
}

/// The build's staged files, shared by its model tasks.
#[derive(Clone, Default)]
pub(super) struct Staging(Arc<Mutex<Inner>>);

impl Staging {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `model`'s staged file, to publish at the end.
    pub fn add(&self, model: &str, entry: Entry) {
        self.inner().entries.push((model.to_string(), entry));
    }

    /// Records where `model`'s staged version is read.
    pub fn readable_at(&self, model: &str, at: Readable) {
        self.inner().readable.insert(model.to_string(), at);
    }

    /// Registers `model`'s staged version as `model` when it has one;
    /// returns whether it did.
    pub async fn register(&self, engine: &Engine, model: &str) -> Result<bool, ExecError> {
        let at = self.inner().readable.get(model).cloned();
        match at {
            Some(Readable::File(location)) => engine.register_file(model, &location).await.map(|()| true),
            Some(Readable::Folder(location)) => engine.register_published(model, &location).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Publishes every staged file together. When that fails, the models
    /// whose files were staged are failed: their tables were not
    /// published by this build (the next command completes a journal that
    /// was written, or discards what was staged before it).
    pub async fn commit(&self, warehouse: &Warehouse, run_id: &str, results: &mut [NodeResult]) {
        let staged = std::mem::take(&mut self.inner().entries);
        let entries = staged.iter().map(|(_, e)| e.clone()).collect();
        let Err(e) = warehouse.commit(run_id, entries).await else { return };
        let journal = warehouse.location(JOURNAL);
        let (message, hint) = if !e.journal_written {
            (format!("not published: {e}"), "nothing of this build is visible; rerun it".to_string())
        } else {
            (
                format!("not published yet: {e}"),
                format!("the next wh command completes the publishing from the journal `{journal}`"),
            )
        };
        for r in results.iter_mut().filter(|r| staged.iter().any(|(m, _)| *m == r.name)) {
            r.status = Status::Error;
            r.message.clone_from(&message);
            r.failure = Some(Failure { message: message.clone(), location: None, hint: Some(hint.clone()) });
        }
    }
}
