//! Writing files so that a crash never leaves half of one behind.
//!
//! Owns the durable write path for everything this crate puts on disk: write
//! to a temporary file beside the target, sync it, rename it over the target,
//! sync the directory. Private files are created with mode 0600 from the
//! start, never chmod-ed afterwards, so there is no moment at which they are
//! readable by others.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{KeysError, Result};

/// Who may read a file that is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Mode 0600: private keys, tokens.
    Private,
    /// Mode 0644: public keys, requests, lists.
    Public,
}

impl Visibility {
    fn mode(self) -> u32 {
        match self {
            Visibility::Private => 0o600,
            Visibility::Public => 0o644,
        }
    }
}

/// Whether an existing file may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse when the target exists (keys: never silently replace one).
    Refuse,
    /// Replace the target atomically (drafts, lists).
    Replace,
}

/// Writes `bytes` to `path` durably and atomically.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    visibility: Visibility,
    overwrite: Overwrite,
) -> Result<()> {
    if overwrite == Overwrite::Refuse && path.exists() {
        return Err(KeysError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let dir = parent_dir(path);
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(visibility.mode())
            .open(&tmp)
            .map_err(|e| KeysError::io("cannot create", &tmp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| KeysError::io("cannot write", &tmp, e))?;
        if overwrite == Overwrite::Refuse {
            // hard_link fails if the target appeared meanwhile: no race replaces a key.
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeysError::AlreadyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    KeysError::io("cannot write", path, e)
                }
            })?;
            fs::remove_file(&tmp).map_err(|e| KeysError::io("cannot remove", &tmp, e))?;
        } else {
            fs::rename(&tmp, path).map_err(|e| KeysError::io("cannot write", path, e))?;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| KeysError::io("cannot sync directory", &dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, refusing one larger than `limit` bytes.
pub fn read_file(path: &Path, what: &'static str, limit: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| KeysError::io("cannot read", path, e))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeysError::io("cannot read", path, e))?;
    if bytes.len() > limit {
        return Err(KeysError::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_file(&path, b"one", Visibility::Private, Overwrite::Refuse).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_file(&path, b"two", Visibility::Private, Overwrite::Refuse).unwrap_err();
        assert!(matches!(err, KeysError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"one");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_swaps_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        write_file(&path, b"one", Visibility::Public, Overwrite::Replace).unwrap();
        write_file(&path, b"two", Visibility::Public, Overwrite::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn oversized_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![0u8; 11]).unwrap();
        assert!(matches!(
            read_file(&path, "x", 10),
            Err(KeysError::TooLarge { .. })
        ));
        let err = read_file(&dir.path().join("missing"), "x", 10).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
