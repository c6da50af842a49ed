//! The lake as a local directory. Objects are written to a temporary name,
//! synced, then renamed: readers and recovery never see half an object.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ObjectStore;
use crate::error::{Error, Result};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Open (creating if needed) a lake directory; fails when it cannot be
    /// written to, so a bad path is reported at start, not at first flush.
    pub fn open(root: &Path) -> Result<LocalStore> {
        fs::create_dir_all(root).map_err(|e| {
            Error::sink(
                root.display(),
                format!("cannot create the lake directory: {e}"),
            )
        })?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::sink(root.display(), e))?;
        let probe = root.join(format!(".lakehose-write-test-{}", std::process::id()));
        fs::write(&probe, b"")
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| {
                Error::sink(
                    root.display(),
                    format!("lake directory is not writable: {e}"),
                )
            })?;
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|s| s == ".." || s == ".") {
            return Err(Error::sink(key, "invalid object key"));
        }
        Ok(self.root.join(key))
    }
}

/// `create_dir_all`, then sync the parent of every directory it made: a new
/// directory's entry is durable only once its parent is synced, and an
/// object in a directory that vanishes at a crash is lost with it.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.is_dir() {
        missing.push(d);
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    for m in missing {
        if let Some(parent) = m.parent() {
            fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

impl ObjectStore for LocalStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        let fail = |e: std::io::Error| Error::sink(path.display(), e);
        create_dirs_durably(dir).map_err(fail)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object"),
            uuid::Uuid::new_v4().simple()
        ));
        let mut f = fs::File::create(&tmp).map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(fail)?;
        // The rename is durable only once the directory entry is synced.
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::sink(path.display(), e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key)?.is_file())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out).map_err(|e| Error::sink(self.root.display(), e))?;
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn url(&self, key: &str) -> String {
        format!("file://{}/{}", self.root.display(), key)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::sink(path.display(), e)),
        }
    }

    fn discard_partial(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(());
        };
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(()); // no directory, nothing half-written
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_file(entry.path())
                    .map_err(|e| Error::sink(entry.path().display(), e))?;
            }
        }
        Ok(())
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // Hidden names are temporaries and lakehose's own state.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        s.put("t/year=2024/a.parquet", b"x").unwrap();
        s.put("errors/t/b.ndjson.gz", b"y").unwrap();
        assert_eq!(s.get("t/year=2024/a.parquet").unwrap().unwrap(), b"x");
        assert!(s.get("nope").unwrap().is_none());
        assert!(s.exists("errors/t/b.ndjson.gz").unwrap());
        assert_eq!(s.list("t/").unwrap(), vec!["t/year=2024/a.parquet"]);
        assert_eq!(s.list("").unwrap().len(), 2);
        for bad in ["", "/abs", "a/../b", "./a"] {
            assert!(s.put(bad, b"z").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn discard_partial_removes_only_that_keys_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        s.put("t/p/b.parquet", b"x").unwrap();
        fs::write(dir.path().join("t/p/.a.parquet.tmp-1"), b"half").unwrap();
        fs::write(dir.path().join("t/p/.b.parquet.tmp-2"), b"other").unwrap();
        s.discard_partial("t/p/a.parquet").unwrap();
        assert!(!dir.path().join("t/p/.a.parquet.tmp-1").exists());
        assert!(dir.path().join("t/p/.b.parquet.tmp-2").exists());
        assert!(s.exists("t/p/b.parquet").unwrap());
        // a key whose directory never existed is fine
        s.discard_partial("nope/x.parquet").unwrap();
    }

    #[test]
    fn unwritable_root_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        // a file where the lake directory should be
        assert!(LocalStore::open(&file.join("lake")).is_err());
    }
}
