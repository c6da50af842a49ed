//! Crash points for the exactly-once tests: `LAKEHOSE_FAILPOINT=name:n`
//! aborts the process (no cleanup, like `kill -9`) the n-th time the named
//! point is reached. Unset, a failpoint costs one relaxed atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn spec() -> &'static Option<(String, u64)> {
    SPEC.get_or_init(|| {
        let v = std::env::var("LAKEHOSE_FAILPOINT").ok()?;
        let (name, n) = v.split_once(':').unwrap_or((&v, "1"));
        Some((name.to_owned(), n.parse().unwrap_or(1)))
    })
}

/// Abort here if this failpoint is armed and due.
pub fn hit(name: &str) {
    if let Some((want, n)) = spec() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("lakehose: failpoint {name}:{n} reached, aborting");
            std::process::abort();
        }
    }
}
