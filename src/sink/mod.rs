//! Object stores the lake is written to. The local directory is the
//! embedded default; S3 implements the same trait.

pub mod local;
pub mod s3;

use crate::error::Result;

/// A flat key space of immutable objects. `put` is atomic: an object is
/// either wholly there or absent, which the exactly-once recovery needs.
pub trait ObjectStore: Send + Sync {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn exists(&self, key: &str) -> Result<bool>;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// URL of a key prefix as a catalog records it (`file:///...` or `s3://...`).
    fn url(&self, key: &str) -> String;
    /// Remove an object; removing a missing one is not an error (replay
    /// `--purge` removes error objects it has replayed).
    fn delete(&self, key: &str) -> Result<()>;
    /// Remove what an interrupted `put` of `key` may have left behind
    /// (recovery calls it for intents whose object never landed).
    fn discard_partial(&self, _key: &str) -> Result<()> {
        Ok(())
    }
}

pub use local::LocalStore;
