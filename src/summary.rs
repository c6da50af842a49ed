//! What a run did, for the final report and `--summary-json`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Records read from the source (blank lines excluded).
    pub records_in: u64,
    /// Records written to the lake as rows.
    pub written: u64,
    /// Records written to the error prefix, by category.
    pub errored: BTreeMap<&'static str, u64>,
    /// Valid records dropped as producer duplicates (an id seen within the
    /// table's `record_id` window).
    pub duplicates_dropped: u64,
    /// Records skipped because a previous run already delivered them.
    pub skipped_delivered: u64,
    pub objects: u64,
    pub data_objects: u64,
    pub error_objects: u64,
    /// Source bytes consumed.
    pub bytes_in: u64,
    /// Bytes of objects written.
    pub bytes_out: u64,
    /// Buffer flushes by reason.
    pub flushes: BTreeMap<String, u64>,
    /// Per shard, how far behind the stream's tip reading was at its last
    /// call (Kinesis MillisBehindLatest); empty for files.
    pub behind_ms: BTreeMap<String, i64>,
    /// Shards read to their end this run (resharding).
    pub shards_finished: u64,
    /// Partitions written to the lake whose catalog registration is still
    /// owed (the catalog failed; retried at every flush and after restart).
    pub partitions_owed: u64,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Peak resident memory of the process at the end of the run (Linux's
    /// VmHWM), to hold against `buffer.memory_cap_mib`; None where the OS
    /// does not say.
    pub peak_rss_bytes: Option<u64>,
}

/// This process's peak resident memory so far (VmHWM in
/// `/proc/self/status`): unlike `getrusage`, it covers only this program,
/// not the process it was started from.
pub fn peak_rss_bytes() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Summary {
    pub fn errored_total(&self) -> u64 {
        self.errored.values().sum()
    }

    pub fn records_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.records_in as f64 / s
        } else {
            0.0
        }
    }

    /// The human report printed at the end of every run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line =
            |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<28}{v:>16}\n"));
        out.push_str("lakehose run summary\n");
        line(&mut out, "records in", group(self.records_in));
        line(&mut out, "written to the lake", group(self.written));
        line(&mut out, "errored", group(self.errored_total()));
        for (k, v) in &self.errored {
            line(&mut out, &format!("  {k}"), group(*v));
        }
        if self.duplicates_dropped > 0 {
            line(
                &mut out,
                "duplicates dropped",
                group(self.duplicates_dropped),
            );
        }
        if self.skipped_delivered > 0 {
            line(
                &mut out,
                "already delivered (skipped)",
                group(self.skipped_delivered),
            );
        }
        line(
            &mut out,
            "objects (data + error)",
            format!(
                "{} ({} + {})",
                group(self.objects),
                self.data_objects,
                self.error_objects
            ),
        );
        if !self.behind_ms.is_empty() {
            let worst = self.behind_ms.values().max().copied().unwrap_or(0);
            line(
                &mut out,
                "shards (max ms behind)",
                format!("{} ({worst})", self.behind_ms.len()),
            );
        }
        if self.partitions_owed > 0 {
            line(
                &mut out,
                "partitions owed to catalog",
                group(self.partitions_owed),
            );
        }
        line(&mut out, "bytes in", mb(self.bytes_in));
        line(&mut out, "bytes written", mb(self.bytes_out));
        let secs = self.elapsed.as_secs_f64();
        line(&mut out, "elapsed", format!("{secs:.2} s"));
        line(
            &mut out,
            "throughput",
            format!("{} rec/s", group(self.records_per_sec() as u64)),
        );
        if secs > 0.0 {
            line(
                &mut out,
                "",
                format!("{:.1} MB/s", self.bytes_in as f64 / 1e6 / secs),
            );
        }
        if let Some(b) = self.peak_rss_bytes {
            line(&mut out, "peak memory", format!("{} MiB", b >> 20));
        }
        out
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(group(n), want);
        }
    }

    #[test]
    fn peak_memory_from_proc_status() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 10 kB\n",
                Some(12345 * 1024),
            ),
            ("VmHWM:\t0 kB", Some(0)),
            ("VmRSS:\t10 kB\n", None),
            ("VmHWM:\t12 MB\n", None),
            ("VmHWM:\tlots kB\n", None),
            ("", None),
        ];
        for (status, want) in cases {
            assert_eq!(vm_hwm(status), *want, "{status:?}");
        }
        // Where /proc exists (Linux), this process has some.
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn render_mentions_every_category() {
        let mut s = Summary {
            records_in: 3,
            ..Default::default()
        };
        s.errored.insert("invalid_json", 1);
        s.errored.insert("schema_violation", 2);
        let r = s.render();
        assert!(
            r.contains("invalid_json")
                && r.contains("schema_violation")
                && r.contains("records in")
        );
    }
}
