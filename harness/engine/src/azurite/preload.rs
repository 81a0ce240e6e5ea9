//! The Node.js preload that spares each Azurite service loading its telemetry library, which
//! the harness always turns off (`--disableTelemetry`) and Azurite then never uses: written
//! next to the pinned npm install and named in the service's `NODE_OPTIONS`. See
//! `skip_disabled_telemetry.cjs` for what it does and what it saves.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The preload's source.
pub(super) const SCRIPT: &str = include_str!("skip_disabled_telemetry.cjs");

/// Its file name in the install directory.
const FILE_NAME: &str = "edw-skip-disabled-telemetry.cjs";

/// Writes the preload into `dir` unless it is there with this content, and returns its path.
/// Parallel processes may write at once: each writes a temporary file and renames it.
pub(super) fn install(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    if std::fs::read_to_string(&path).is_ok_and(|text| text == SCRIPT) {
        return Ok(path);
    }
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(SCRIPT.as_bytes())?;
    // Readable as the rest of the install is (a temporary file starts owner-only).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// `NODE_OPTIONS` for a service: the caller's own (`existing`), then `--require` of the
/// preload. `None` when the path cannot be written into `NODE_OPTIONS` safely (not UTF-8, or
/// holding a quote or backslash): the service then starts without the preload.
pub(super) fn node_options(existing: Option<&OsStr>, preload: &Path) -> Option<OsString> {
    let path = preload.to_str()?;
    if path.contains(['"', '\\']) {
        return None;
    }
    let require = format!("--require \"{path}\"");
    let mut options = existing
        .filter(|o| !o.is_empty())
        .map(OsStr::to_owned)
        .unwrap_or_default();
    if !options.is_empty() {
        options.push(" ");
    }
    options.push(require);
    Some(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preload_is_written_once_and_rewritten_when_it_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(FILE_NAME));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SCRIPT);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "{mode:o}");
        }
        std::fs::write(&path, "// an older preload").unwrap();
        install(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SCRIPT);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary file left behind");
    }

    #[test]
    fn node_options_keep_the_callers_own_and_quote_the_path() {
        let preload = Path::new("/home/a user/.cache/edw/edw-skip-disabled-telemetry.cjs");
        assert_eq!(
            node_options(None, preload).unwrap(),
            "--require \"/home/a user/.cache/edw/edw-skip-disabled-telemetry.cjs\""
        );
        assert_eq!(
            node_options(Some(OsStr::new("")), preload).unwrap(),
            "--require \"/home/a user/.cache/edw/edw-skip-disabled-telemetry.cjs\""
        );
        assert_eq!(
            node_options(Some(OsStr::new("--max-old-space-size=512")), preload).unwrap(),
            "--max-old-space-size=512 --require \"/home/a user/.cache/edw/edw-skip-disabled-telemetry.cjs\""
        );
        assert_eq!(node_options(None, Path::new("/odd\"dir/p.cjs")), None);
        assert_eq!(node_options(None, Path::new("/odd\\dir/p.cjs")), None);
    }
}
