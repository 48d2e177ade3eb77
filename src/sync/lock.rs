//! "Never two passes at once": an exclusive lock on a file beside the store.
//!
//! flock-style locks vanish with the process that held them, so a killed
//! pass never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::exit::PassLocked;

/// Held for the length of a pass; released when dropped.
pub struct PassLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the pass lock {path}")]
pub struct LockFileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The lock file that guards passes over the store at `store_path`.
pub fn lock_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl PassLock {
    /// Takes the lock or says who holds it.
    pub fn try_acquire(store_path: &Path) -> anyhow::Result<PassLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(store_path);
        let open_error = |source| LockFileError {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    String::new()
                } else {
                    format!(", by pid {holder}")
                };
                return Err(PassLocked { path, holder }.into());
            }
            Err(TryLockError::Error(source)) => return Err(open_error(source).into()),
        }
        // Who holds it, for the message another process prints.
        file.set_len(0).map_err(open_error)?;
        file.rewind().map_err(open_error)?;
        write!(file, "{}", std::process::id()).map_err(open_error)?;
        Ok(PassLock { _file: file })
    }
}

impl PassLock {
    /// Takes the lock, waiting up to `wait` for a running pass to finish.
    pub async fn acquire_within(
        store_path: &Path,
        wait: std::time::Duration,
    ) -> anyhow::Result<PassLock> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match PassLock::try_acquire(store_path) {
                Ok(lock) => return Ok(lock),
                Err(err) if err.is::<PassLocked>() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_acquire_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("accounts.db");
        let held = PassLock::try_acquire(&store).unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            drop(held);
        });
        let waited = PassLock::acquire_within(&store, std::time::Duration::from_secs(5)).await;
        assert!(waited.is_ok());
        release.await.unwrap();
        let _second = waited.unwrap();
        let refused = PassLock::acquire_within(&store, std::time::Duration::from_millis(200)).await;
        assert!(refused.err().unwrap().is::<PassLocked>());
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("accounts.db");
        let held = PassLock::try_acquire(&store).unwrap();
        let err = PassLock::try_acquire(&store).err().unwrap();
        let message = err.to_string();
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        drop(held);
        assert!(PassLock::try_acquire(&store).is_ok());
    }
}
