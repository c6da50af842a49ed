//! Checkpoint state in a local file, replaced atomically (write, fsync,
//! rename, fsync the directory) so a crash leaves the old or the new state,
//! never a torn one.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use super::{CheckpointState, CheckpointStore};
use crate::error::{Error, Result};

pub struct LocalCheckpointStore {
    path: PathBuf,
}

impl LocalCheckpointStore {
    pub fn new(path: PathBuf) -> Self {
        LocalCheckpointStore { path }
    }
}

impl CheckpointStore for LocalCheckpointStore {
    fn load(&mut self) -> Result<Option<CheckpointState>> {
        match fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::checkpoint(self.path.display(), format!("unreadable checkpoint: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::checkpoint(self.path.display(), e)),
        }
    }

    fn save(&mut self, state: &CheckpointState) -> Result<()> {
        let fail = |e: std::io::Error| Error::checkpoint(self.path.display(), e);
        let dir = self
            .path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        fs::create_dir_all(&dir).map_err(fail)?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::checkpoint(self.path.display(), e))?;
        let mut f = fs::File::create(&tmp).map_err(fail)?;
        f.write_all(&bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(fail)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}
