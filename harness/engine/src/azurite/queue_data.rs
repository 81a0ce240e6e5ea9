//! The queue services' data directories: one per service in the system's temporary directory,
//! marked with the process that owns it (its id and host name); those whose owner died without
//! removing them (a SIGKILL skips the drop that does) are swept before a new one is made. Only
//! an owner on this host is judged: a container sharing the directory has other process ids.

use std::io;
use std::path::{Path, PathBuf};

/// The name every data directory starts with.
const PREFIX: &str = "edw-azurite-queue-";
/// The file in a data directory that names its owner: `<process id> <host name>`.
const OWNER_FILE: &str = "edw-owner.pid";

/// A fresh data directory for a queue service, owned by this process (removed on drop), after
/// sweeping the directories of owners that are gone.
pub fn create() -> io::Result<tempfile::TempDir> {
    let root = std::env::temp_dir();
    for dir in sweep(&root) {
        tracing::debug!(
            "removed {}: the data of an Azurite queue service whose owner process is gone",
            dir.display()
        );
    }
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(&root)?;
    std::fs::write(dir.path().join(OWNER_FILE), owner_line(std::process::id()))?;
    Ok(dir)
}

/// What the owner file of a directory made by process `pid` here says.
fn owner_line(pid: u32) -> String {
    format!("{pid} {}", host_name())
}

/// Removes the data directories under `root` whose owner process on this host is gone and
/// returns them. A directory without an owner file (made by an older version, or being made
/// right now), with a living owner or with an owner on another host is left alone.
pub fn sweep(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(PREFIX))
        .map(|entry| entry.path())
        .filter(|dir| owner_gone(dir))
        .filter(|dir| std::fs::remove_dir_all(dir).is_ok())
        .collect()
}

fn owner_gone(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    let Some((pid, host)) = text.trim().split_once(' ') else {
        return false;
    };
    host == host_name() && pid.parse::<i32>().is_ok_and(|pid| pid > 0 && !alive(pid))
}

/// This host's name ("" if it cannot be read: then only owners that wrote "" are judged).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists, as
/// another user's).
#[cfg(unix)]
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let answered = unsafe { libc::kill(pid, 0) } == 0;
    answered || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Elsewhere nothing is known to be gone: nothing is swept.
#[cfg(not(unix))]
fn alive(_pid: i32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir(root: &Path, name: &str, owner: Option<String>) -> PathBuf {
        let dir = root.join(format!("{PREFIX}{name}"));
        std::fs::create_dir_all(dir.join("__queuestorage__")).unwrap();
        if let Some(owner) = owner {
            std::fs::write(dir.join(OWNER_FILE), owner).unwrap();
        }
        dir
    }

    #[test]
    fn only_the_data_of_owners_that_are_gone_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let mut finished = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = finished.id();
        finished.wait().unwrap();
        let orphan = data_dir(root.path(), "orphan", Some(owner_line(gone_pid)));
        let ours = data_dir(root.path(), "ours", Some(owner_line(std::process::id())));
        let unmarked = data_dir(root.path(), "unmarked", None);
        let garbled = data_dir(root.path(), "garbled", Some("not a pid".to_owned()));
        let elsewhere = data_dir(
            root.path(),
            "elsewhere",
            Some(format!("{gone_pid} another-host-{}", host_name())),
        );
        let other = root.path().join("someone-else");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(OWNER_FILE), owner_line(gone_pid)).unwrap();

        assert_eq!(sweep(root.path()), vec![orphan.clone()]);
        assert!(!orphan.exists());
        for kept in [&ours, &unmarked, &garbled, &elsewhere, &other] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }

    #[test]
    fn a_new_data_directory_names_this_process_as_its_owner() {
        let dir = create().unwrap();
        let owner = std::fs::read_to_string(dir.path().join(OWNER_FILE)).unwrap();
        assert_eq!(owner, format!("{} {}", std::process::id(), host_name()));
        assert!(dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(PREFIX));
        // Its owner is alive: a sweep leaves it.
        assert!(!sweep(&std::env::temp_dir()).contains(&dir.path().to_path_buf()));
        assert!(dir.path().exists());
    }
}
