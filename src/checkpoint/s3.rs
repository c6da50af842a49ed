//! Checkpoint state as one S3 object per application and source, written
//! with conditional PUTs: each save names the ETag it last saw (or that the
//! object must not exist yet), so when two instances read the same stream
//! the second to save is fenced off and stops instead of both advancing it.

use std::sync::Arc;

use super::{CheckpointState, CheckpointStore};
use crate::error::{Error, Result};
use crate::sink::s3::{Conditional, Precondition, S3Store};
use crate::sink::ObjectStore;

pub struct S3CheckpointStore {
    store: Arc<S3Store>,
    key: String,
    /// ETag of the state as we last read or wrote it; None until loaded or
    /// when the object did not exist.
    etag: Option<String>,
}

impl S3CheckpointStore {
    pub fn new(store: Arc<S3Store>, key: String) -> Self {
        S3CheckpointStore {
            store,
            key,
            etag: None,
        }
    }
}

impl CheckpointStore for S3CheckpointStore {
    fn load(&mut self) -> Result<Option<CheckpointState>> {
        match self.store.get_with_etag(&self.key)? {
            None => {
                self.etag = None;
                Ok(None)
            }
            Some((bytes, etag)) => {
                let state = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::checkpoint(self.location(), format!("unreadable checkpoint: {e}"))
                })?;
                self.etag = Some(etag);
                Ok(Some(state))
            }
        }
    }

    fn save(&mut self, state: &CheckpointState) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| Error::checkpoint(self.location(), e))?;
        let pre = match &self.etag {
            Some(e) => Precondition::Matches(e.clone()),
            None => Precondition::Absent,
        };
        match self.store.put_if(&self.key, &bytes, &pre)? {
            Conditional::Written(etag) => {
                self.etag = Some(etag);
                Ok(())
            }
            Conditional::Lost => Err(Error::checkpoint(
                self.location(),
                "another writer changed this checkpoint since it was read: a second \
                 lakehose instance with the same app_name is reading this source; this one stops",
            )),
        }
    }

    fn location(&self) -> String {
        self.store.url(&self.key)
    }
}
