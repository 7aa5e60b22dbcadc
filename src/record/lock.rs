//! One session at a time in a run directory: `RUN_DIR/.lock` holds the pid
//! of the perfsize process writing the run, from the moment it opens the
//! directory until it exits. A second session (`--resume` of a run still
//! going) is refused rather than interleaving its steps with the first's.
//!
//! A lock whose process is dead (a run killed with SIGKILL, or forced out by
//! a third Ctrl-C) is stale: the next session takes it over.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file, hidden beside plan.json.
const LOCK_FILE: &str = ".lock";

/// Why a run directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "run directory {dir} is in use by perfsize process {pid}: wait for it to finish, \
         or stop it (then --resume continues the run); if no such process runs, delete {lock}"
    )]
    Held { dir: PathBuf, pid: u32, lock: PathBuf },
    #[error("cannot lock run directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock of a run directory; released (the file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of run directory `dir` for this process, taking over a
    /// stale one.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { dir: dir.to_path_buf(), source };
        // Twice at most: a stale lock is removed once, then created anew; a
        // second failure is another session that won the race.
        for _ in 0..2 {
            match create_with_pid(&path) {
                Ok(()) => return Ok(RunLock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match holder(&path) {
                    Some(pid) if is_alive(pid) => return Err(LockError::Held { dir: dir.to_path_buf(), pid, lock: path }),
                    _ => {
                        tracing::info!("taking over the stale lock {}", path.display());
                        std::fs::remove_file(&path).or_else(ignore_not_found).map_err(io)?;
                    }
                },
                Err(e) => return Err(io(e)),
            }
        }
        let pid = holder(&path).unwrap_or_default();
        Err(LockError::Held { dir: dir.to_path_buf(), pid, lock: path })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the lock file, failing if it exists, with this process's pid in it.
fn create_with_pid(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    writeln!(file, "{}", std::process::id())
}

/// The pid a lock file names; None when unreadable (half-written by a
/// process that died at once: stale too).
fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn ignore_not_found(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }
}

/// Whether process `pid` exists: signal 0 checks without sending anything;
/// EPERM means it exists under another user.
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the pid exists.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("perfsize-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_session_is_refused_until_the_first_releases_the_lock() {
        let dir = scratch("held");
        let first = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err();
        assert!(matches!(err, LockError::Held { pid, .. } if pid == std::process::id()), "{err}");
        assert!(err.to_string().contains("in use by perfsize process"), "{err}");
        drop(first);
        assert!(!dir.join(LOCK_FILE).exists(), "released on drop");
        drop(RunLock::acquire(&dir).expect("free again"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_or_half_written_is_taken_over() {
        let dir = scratch("stale");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        for content in [format!("{dead}\n"), String::new()] {
            std::fs::write(dir.join(LOCK_FILE), content).unwrap();
            let lock = RunLock::acquire(&dir).expect("a stale lock is taken over");
            assert_eq!(holder(&dir.join(LOCK_FILE)), Some(std::process::id()));
            drop(lock);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
