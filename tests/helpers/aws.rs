//! Tests against the AWS emulators (kinesis-mock, moto) that
//! `scripts/emulators.sh run` starts on loopback and announces through the
//! environment. Every test gets its own stream, bucket and database.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{lakehose_cmd, run_command, Lake, RunOutput};

/// Endpoint variables the emulator script exports.
const ENDPOINT_VARS: [&str; 3] = [
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_ENDPOINT_URL_KINESIS",
];

/// The emulators and SDK clients for one test.
pub struct Aws {
    pub rt: tokio::runtime::Runtime,
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    /// Names unique to this test: stream, bucket and database.
    pub stream: String,
    pub bucket: String,
    pub database: String,
}

/// Fail (never skip) when the emulators are not there: `make test` starts
/// them, and only loopback endpoints are allowed as test targets.
fn endpoints() -> BTreeMap<&'static str, String> {
    ENDPOINT_VARS
        .iter()
        .map(|v| {
            let url = std::env::var(v).unwrap_or_else(|_| {
                panic!(
                    "{v} is not set: AWS tests need the emulators; run them through `make test` \
                     (or `scripts/emulators.sh run -- cargo test`)"
                )
            });
            assert!(
                url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
                "{v}={url}: test traffic may only go to loopback"
            );
            (*v, url)
        })
        .collect()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Aws {
    /// Clients for the emulators and fresh names; creates the bucket and a
    /// stream of `shards` shards (waiting until it is active).
    pub fn new(test: &str, shards: i32) -> Aws {
        let ep = endpoints();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sdk = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .load(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(&ep["AWS_ENDPOINT_URL_S3"])
                .force_path_style(true)
                .build(),
        );
        let glue = aws_sdk_glue::Client::from_conf(
            aws_sdk_glue::config::Builder::from(&sdk)
                .endpoint_url(&ep["AWS_ENDPOINT_URL_GLUE"])
                .build(),
        );
        let kinesis = aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::config::Builder::from(&sdk)
                .endpoint_url(&ep["AWS_ENDPOINT_URL_KINESIS"])
                .build(),
        );
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!(
            "{}-{}-{n}-{:04x}",
            test.replace('_', "-"),
            std::process::id(),
            rand_u16()
        );
        let aws = Aws {
            rt,
            s3,
            glue,
            kinesis,
            stream: format!("it-{tag}"),
            bucket: format!("it-{tag}").chars().take(63).collect(),
            database: format!("it_{}", tag.replace('-', "_")),
        };
        aws.rt
            .block_on(aws.s3.create_bucket().bucket(&aws.bucket).send())
            .expect("create bucket");
        aws.create_stream(shards);
        aws
    }

    fn create_stream(&self, shards: i32) {
        self.rt
            .block_on(
                self.kinesis
                    .create_stream()
                    .stream_name(&self.stream)
                    .shard_count(shards)
                    .send(),
            )
            .expect("create stream");
        self.wait_active();
    }

    /// Wait until the stream is ACTIVE (after creation or a reshard).
    pub fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self
                .rt
                .block_on(
                    self.kinesis
                        .describe_stream_summary()
                        .stream_name(&self.stream)
                        .send(),
                )
                .expect("describe stream");
            let status = out
                .stream_description_summary()
                .map(|d| d.stream_status().as_str().to_owned());
            if status.as_deref() == Some("ACTIVE") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stream never became ACTIVE: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The open shards' ids and hash key ranges (start, end).
    pub fn open_shards(&self) -> Vec<(String, u128, u128)> {
        let out = self
            .rt
            .block_on(self.kinesis.list_shards().stream_name(&self.stream).send())
            .expect("list shards");
        out.shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none()
            })
            .map(|s| {
                let r = s.hash_key_range().expect("hash range");
                (
                    s.shard_id().to_owned(),
                    r.starting_hash_key().parse().expect("hash"),
                    r.ending_hash_key().parse().expect("hash"),
                )
            })
            .collect()
    }

    /// Every shard's parents (ListShards), for checking read order.
    pub fn shard_parents(&self) -> BTreeMap<String, Vec<String>> {
        let out = self
            .rt
            .block_on(self.kinesis.list_shards().stream_name(&self.stream).send())
            .expect("list shards");
        out.shards()
            .iter()
            .map(|s| {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                (s.shard_id().to_owned(), parents)
            })
            .collect()
    }

    /// Split an open shard in the middle of its hash key range.
    pub fn split(&self, shard: &str) {
        let (_, lo, hi) = self
            .open_shards()
            .into_iter()
            .find(|(id, _, _)| id == shard)
            .expect("open shard");
        self.rt
            .block_on(
                self.kinesis
                    .split_shard()
                    .stream_name(&self.stream)
                    .shard_to_split(shard)
                    .new_starting_hash_key((lo + (hi - lo) / 2 + 1).to_string())
                    .send(),
            )
            .expect("split shard");
        self.wait_active();
    }

    /// Merge two open shards with adjacent hash key ranges.
    pub fn merge(&self, a: &str, b: &str) {
        self.rt
            .block_on(
                self.kinesis
                    .merge_shards()
                    .stream_name(&self.stream)
                    .shard_to_merge(a)
                    .adjacent_shard_to_merge(b)
                    .send(),
            )
            .expect("merge shards");
        self.wait_active();
    }

    /// `lakehose put` of an NDJSON file into this test's stream.
    pub fn put(&self, input: &Path, extra: &[&str]) {
        let mut c = lakehose_cmd();
        c.arg("put")
            .arg("--stream")
            .arg(&self.stream)
            .arg("--input")
            .arg(input)
            .args(extra);
        let (st, out, err) = run_command(c, None);
        assert!(st.success(), "lakehose put failed:\n{out}\n{err}");
    }

    /// A config file for `lakehose run` reading this stream into this
    /// bucket (prefix `lake/`) with the Glue catalog; `extra` is appended.
    pub fn config(&self, lake: &Lake, extra: &str) -> PathBuf {
        let p = lake.path("lakehose.toml");
        let text = format!(
            "prefix = \"lake/\"\nschemas = {schemas:?}\n{extra}\n\
             [kinesis]\nstream = \"{stream}\"\nidle_poll_ms = 200\n\
             [s3]\nbucket = \"{bucket}\"\nforce_path_style = true\n\
             [catalog]\nkind = \"glue\"\ndatabase = \"{db}\"\n",
            schemas = lake.schemas,
            stream = self.stream,
            bucket = self.bucket,
            db = self.database,
        );
        fs::write(&p, text).expect("write config");
        p
    }

    /// `lakehose run --config <cfg> --exit-when-caught-up`.
    pub fn run_command(&self, lake: &Lake, cfg: &Path, extra: &[&str]) -> Command {
        let summary = lake.path("summary.json");
        let _ = fs::remove_file(&summary);
        let mut c = lakehose_cmd();
        c.current_dir(lake.dir.path())
            .arg("run")
            .arg("--config")
            .arg(cfg)
            .arg("--exit-when-caught-up")
            .arg("--insecure-dev-key")
            .arg("--summary-json")
            .arg(&summary)
            .arg("-q")
            .args(extra);
        c
    }

    pub fn run(&self, lake: &Lake, cfg: &Path, extra: &[&str]) -> RunOutput {
        let out = lake.run_cmd(self.run_command(lake, cfg, extra), None);
        out.assert_ok();
        out
    }

    /// Every key of the bucket.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .rt
                .block_on(
                    self.s3
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .set_continuation_token(token.clone())
                        .send(),
                )
                .expect("list objects");
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    /// Copy the bucket's `lake/` prefix into the lake directory of `lake`,
    /// so the local readers (Parquet rows, error records) check it.
    pub fn mirror(&self, lake: &Lake) {
        let root = lake.root();
        let _ = fs::remove_dir_all(&root);
        for key in self.keys() {
            let Some(rel) = key.strip_prefix("lake/") else {
                continue;
            };
            let out = self
                .rt
                .block_on(self.s3.get_object().bucket(&self.bucket).key(&key).send())
                .expect("get object");
            let bytes = self.rt.block_on(out.body.collect()).expect("body").to_vec();
            let p = root.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, bytes).expect("write mirror");
        }
    }

    /// Glue partitions of a table: partition path -> location.
    pub fn glue_partitions(&self, table: &str) -> BTreeMap<String, String> {
        let t = self.glue_table(table);
        let keys: Vec<String> = t
            .partition_keys()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .rt
                .block_on(
                    self.glue
                        .get_partitions()
                        .database_name(&self.database)
                        .table_name(table)
                        .set_next_token(token.clone())
                        .send(),
                )
                .expect("get partitions");
            for p in page.partitions() {
                let path = keys
                    .iter()
                    .zip(p.values())
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("/");
                let loc = p
                    .storage_descriptor()
                    .and_then(|sd| sd.location())
                    .unwrap_or_default()
                    .to_owned();
                out.insert(path, loc);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out
    }

    pub fn glue_table(&self, table: &str) -> aws_sdk_glue::types::Table {
        self.rt
            .block_on(
                self.glue
                    .get_table()
                    .database_name(&self.database)
                    .name(table)
                    .send(),
            )
            .expect("get table")
            .table()
            .cloned()
            .expect("table")
    }

    /// Partition paths that hold at least one Parquet object on S3.
    pub fn partitions_on_s3(&self, table: &str) -> BTreeSet<String> {
        let prefix = format!("lake/{table}/");
        self.keys()
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|k| k.ends_with(".parquet"))
            .filter_map(|k| k.rsplit_once('/').map(|(p, _)| p.to_owned()))
            .collect()
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32)) as u16
}
