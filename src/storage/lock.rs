//! The warehouse lock: one build or run at a time per warehouse, a lock
//! object created exclusively, and recovered when its process is gone.

use super::*;

/// Where the lock lives, relative to the warehouse.
pub const LOCK: &str = "_wh/lock";

/// A held warehouse lock; [`WarehouseLock::release`] frees it.
pub struct WarehouseLock {
    warehouse: Warehouse,
    run_id: String,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another run holds it: who, as recorded in the lock.
    Held {
        holder: serde_json::Value,
        location: String,
    },
    Io(String),
}

/// Returns whether process `pid` is alive on this machine: signal 0 is
/// sent to it, which any Unix answers without `/proc` (EPERM: it lives,
/// as another user's). Elsewhere every process counts as alive, so a lock
/// is never taken from a live run.
pub(super) fn process_alive(pid: u64) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return false;
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

impl Warehouse {
    /// Takes the warehouse lock for a build or run, recording `holder`
    /// (run id, command, user, host, pid, start time). A lock whose
    /// process is gone from this host is recovered; returns the recovered
    /// holder too.
    pub async fn lock(
        &self,
        holder: &serde_json::Value,
    ) -> Result<(WarehouseLock, Option<serde_json::Value>), LockError> {
        let text = serde_json::to_vec_pretty(holder).map_err(|e| LockError::Io(e.to_string()))?;
        let mut recovered = None;
        for _ in 0..2 {
            match self.create_exclusive(LOCK, &text).await {
                Ok(true) => {
                    let run_id = holder["run_id"].as_str().unwrap_or_default().to_string();
                    return Ok((WarehouseLock { warehouse: self.clone(), run_id }, recovered));
                }
                Ok(false) => {
                    let current = self.get(LOCK).await.map_err(|e| LockError::Io(e.to_string()))?;
                    let current: serde_json::Value =
                        current.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
                    let same_host = current["host"] == holder["host"];
                    let dead = current["pid"].as_u64().is_some_and(|pid| !process_alive(pid));
                    if recovered.is_none() && same_host && dead {
                        self.delete(LOCK).await.map_err(|e| LockError::Io(e.to_string()))?;
                        recovered = Some(current);
                        continue;
                    }
                    return Err(LockError::Held { holder: current, location: self.location(LOCK) });
                }
                Err(e) => return Err(LockError::Io(e.to_string())),
            }
        }
        Err(LockError::Io(format!("cannot take the lock `{}`", self.location(LOCK))))
    }

    /// Creates `rel` with `bytes` unless it exists; returns whether it did.
    async fn create_exclusive(&self, rel: &str, bytes: &[u8]) -> std::io::Result<bool> {
        match self {
            Warehouse::Local(root) => {
                let path = root.join(rel);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                // Written whole beside it, then linked in place: the link
                // fails if the lock exists, and a reader never sees it empty.
                let tmp =
                    path.with_file_name(format!(".lock.{}.{}", std::process::id(), uuid::Uuid::new_v4().simple()));
                let mut f = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut f, bytes)?;
                f.sync_all()?;
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Warehouse::Remote(r) => {
                let options = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
                match r.store.put_opts(&Self::key(r, rel), PutPayload::from(bytes.to_vec()), options).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(std::io::Error::other(describe(&e))),
                }
            }
        }
    }

    /// Deletes `rel` if it exists.
    pub(super) async fn delete(&self, rel: &str) -> std::io::Result<()> {
        match self {
            Warehouse::Local(root) => match std::fs::remove_file(root.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Warehouse::Remote(r) => match r.store.delete(&Self::key(r, rel)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(std::io::Error::other(describe(&e))),
            },
        }
    }
}

impl WarehouseLock {
    /// Frees the lock if this run still holds it.
    pub async fn release(self) {
        let ours = match self.warehouse.get(LOCK).await {
            Ok(Some(b)) => serde_json::from_slice::<serde_json::Value>(&b)
                .is_ok_and(|h| h["run_id"].as_str() == Some(self.run_id.as_str())),
            _ => false,
        };
        if ours {
            let _ = self.warehouse.delete(LOCK).await;
        }
    }
}
