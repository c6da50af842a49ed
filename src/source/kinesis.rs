//! A Kinesis Data Stream as the source: one reader task per shard, shards
//! discovered with ListShards and re-discovered periodically and whenever a
//! shard ends, children started only after their parents are read to the
//! end *and* checkpointed (so records of one partition key keep their order
//! across a reshard), KPL aggregates split into their user records.
//!
//! Positions are (sequence number, sub-sequence number). A checkpoint says
//! "resume at this position": reading restarts AT_SEQUENCE_NUMBER of its
//! sequence number and drops the sub-records before it, which is exact for
//! aggregates cut in the middle too.
//!
//! The per-shard tasks run on the shared runtime and never block: they hand
//! batches to this source's thread over an async channel, and only that
//! thread blocks on the pipeline's bounded channel (backpressure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use crossbeam_channel::{SendTimeoutError, Sender};
use tokio::sync::mpsc;

use super::kpl::{self, Kpl};
use super::{now_ms, Chunk, Source, SourceContext};
use crate::aws::{describe, Aws};
use crate::checkpoint::Position;
use crate::config::{KinesisConfig, StartPosition};
use crate::error::{Error, Result};

/// Kinesis allows 5 GetRecords calls per second per shard.
const MIN_CALL_GAP: Duration = Duration::from_millis(200);
/// And 2 MB/s of reads per shard.
const READ_BYTES_PER_SEC: u64 = 2 * 1024 * 1024;
/// Batches in flight from the shard tasks to this thread.
const TASK_QUEUE: usize = 8;

pub struct KinesisSource {
    aws: Arc<Aws>,
    client: Client,
    cfg: KinesisConfig,
    id: String,
    name: String,
    exit_when_caught_up: bool,
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone)]
struct ShardInfo {
    parents: Vec<String>,
}

/// Where a shard's reader starts.
#[derive(Debug, Clone, Copy)]
enum StartAt {
    /// From a checkpoint: AT_SEQUENCE_NUMBER, dropping sub-records before it.
    Resume(Position),
    TrimHorizon,
    Latest,
    /// AT_TIMESTAMP (epoch ms): `start = "latest"` as of the first start.
    Since(i64),
}

/// What a shard task reports.
enum Msg {
    Batch {
        chunk: Chunk,
        /// The call returned nothing and the shard is at the stream's tip.
        caught_up: bool,
    },
    Failed(String, Error),
}

impl KinesisSource {
    pub fn new(
        aws: Arc<Aws>,
        cfg: KinesisConfig,
        name: Option<String>,
        exit_when_caught_up: bool,
    ) -> KinesisSource {
        KinesisSource {
            client: Client::new(&aws.sdk),
            aws,
            id: format!("kinesis:{}", cfg.stream),
            name: name.unwrap_or_else(|| cfg.stream.clone()),
            cfg,
            exit_when_caught_up,
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::Kinesis {
            stream: self.cfg.stream.clone(),
            message: message.to_string(),
        }
    }

    /// Every shard of the stream, open and closed (ListShards, paginated).
    async fn list_shards(&self) -> Result<BTreeMap<String, ShardInfo>> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            // With a NextToken, the stream name must not be given again.
            let req = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(&self.cfg.stream),
            };
            let page = req.send().await.map_err(|e| self.fail(describe(&e)))?;
            for s in page.shards() {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                out.insert(s.shard_id().to_owned(), ShardInfo { parents });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    async fn run_async(&self, ctx: &SourceContext, tx: &Sender<Result<Chunk>>) -> Result<()> {
        let (task_tx, mut task_rx) = mpsc::channel::<Msg>(TASK_QUEUE);
        let mut shards = self.list_shards().await?;
        let mut listed_at = Instant::now();
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        // Shards whose last call returned nothing at the tip.
        let mut caught_up: BTreeSet<String> = BTreeSet::new();
        // Shards this run read to their end (durable or not yet).
        let mut ended: BTreeSet<String> = BTreeSet::new();
        let mut retired: BTreeSet<String> = BTreeSet::new();
        let discovery = Duration::from_secs(self.cfg.discovery_seconds.max(1));
        let result = loop {
            if ctx.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let finished = ctx.finished.lock().expect("finished lock").clone();
            // Retire checkpoints of shards the stream no longer has.
            let gone: Vec<String> = ctx
                .resume
                .shards
                .keys()
                .chain(finished.iter())
                .filter(|s| !shards.contains_key(*s) && !retired.contains(*s))
                .cloned()
                .collect();
            if !gone.is_empty() {
                retired.extend(gone.iter().cloned());
                tracing::info!(?gone, "retiring checkpoints of shards past retention");
                let chunk = Chunk {
                    shard: Arc::from(gone[0].as_str()),
                    retire: gone,
                    next: Position::default(),
                    arrival_ms: now_ms(),
                    ..Default::default()
                };
                if !forward(tx, chunk, &ctx.stop) {
                    break Ok(());
                }
            }
            // Start every shard whose parents are finished (or gone).
            for (id, info) in &shards {
                if running.contains_key(id) || ended.contains(id) || finished.contains(id) {
                    continue;
                }
                let parents_done = info
                    .parents
                    .iter()
                    .all(|p| finished.contains(p) || !shards.contains_key(p));
                if !parents_done {
                    continue;
                }
                let start = match ctx.resume.shards.get(id) {
                    Some(p) => StartAt::Resume(*p),
                    // A child of a shard we know (listed, or finished by us)
                    // starts at its beginning, whatever `start` says: its
                    // records follow the parent's.
                    None if info
                        .parents
                        .iter()
                        .any(|p| shards.contains_key(p) || finished.contains(p)) =>
                    {
                        StartAt::TrimHorizon
                    }
                    None => match self.cfg.start {
                        StartPosition::TrimHorizon => StartAt::TrimHorizon,
                        // Not LATEST itself: after a crash before this shard's
                        // first checkpoint, LATEST would skip what arrived
                        // meanwhile. The first start's time is checkpointed.
                        StartPosition::Latest => match ctx.resume.started_ms {
                            Some(ms) => StartAt::Since(ms),
                            None => StartAt::Latest,
                        },
                    },
                };
                tracing::info!(shard = %id, ?start, "reading shard");
                let reader = ShardReader {
                    client: self.client.clone(),
                    stream: self.cfg.stream.clone(),
                    shard: Arc::from(id.as_str()),
                    max_records: self.cfg.max_records,
                    idle: Duration::from_millis(self.cfg.idle_poll_ms).max(MIN_CALL_GAP),
                    stop: ctx.stop.clone(),
                };
                let out = task_tx.clone();
                running.insert(
                    id.clone(),
                    self.aws.handle().spawn(async move {
                        let shard = reader.shard.to_string();
                        if let Err(e) = reader.run(start, &out).await {
                            let _ = out.send(Msg::Failed(shard, e)).await;
                        }
                    }),
                );
            }
            // Only with nothing queued: a batch behind a "caught up" report
            // would otherwise be left unread.
            if self.exit_when_caught_up && task_rx.is_empty() {
                let all_done = shards.keys().all(|id| {
                    finished.contains(id)
                        || (running.contains_key(id)
                            && !ended.contains(id)
                            && caught_up.contains(id))
                });
                if all_done {
                    tracing::info!("every shard is caught up: exiting");
                    break Ok(());
                }
            }
            let msg = tokio::select! {
                m = task_rx.recv() => m,
                _ = tokio::time::sleep(Duration::from_millis(100)) => None,
            };
            match msg {
                Some(Msg::Batch {
                    chunk,
                    caught_up: at_tip,
                }) => {
                    let id = chunk.shard.to_string();
                    if at_tip {
                        caught_up.insert(id.clone());
                    } else {
                        caught_up.remove(&id);
                    }
                    if chunk.end_of_shard {
                        ended.insert(id.clone());
                        running.remove(&id);
                        // Its children are listed by now.
                        listed_at = Instant::now() - discovery;
                    }
                    if (!chunk.records.is_empty() || chunk.end_of_shard)
                        && !forward(tx, chunk, &ctx.stop)
                    {
                        break Ok(());
                    }
                }
                Some(Msg::Failed(shard, e)) => {
                    tracing::error!(%shard, error = %e, "shard reader failed");
                    break Err(e);
                }
                None => {}
            }
            if listed_at.elapsed() >= discovery {
                match self.list_shards().await {
                    Ok(s) => shards = s,
                    // Keep reading the shards we know; try again later.
                    Err(e) => tracing::warn!(error = %e, "ListShards failed"),
                }
                listed_at = Instant::now();
            }
        };
        for (_, h) in running {
            h.abort();
        }
        result
    }
}

/// Hand a chunk to the pipeline, waiting while it is busy (backpressure),
/// giving up when asked to stop. False when the chunk could not be sent.
fn forward(tx: &Sender<Result<Chunk>>, mut chunk: Chunk, stop: &AtomicBool) -> bool {
    loop {
        match tx.send_timeout(Ok(chunk), Duration::from_millis(200)) {
            Ok(()) => return true,
            Err(SendTimeoutError::Timeout(Ok(c))) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                chunk = c;
            }
            Err(_) => return false,
        }
    }
}

impl Source for KinesisSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn resumable(&self) -> bool {
        true
    }

    fn size_hint(&self) -> Option<u64> {
        None
    }

    fn run(self: Box<Self>, ctx: &SourceContext, tx: Sender<Result<Chunk>>) -> Result<()> {
        let aws = self.aws.clone();
        aws.block_on(self.run_async(ctx, &tx))
    }
}

/// Reads one shard from a start position to its end (or forever while it
/// is open).
struct ShardReader {
    client: Client,
    stream: String,
    shard: Arc<str>,
    max_records: i32,
    idle: Duration,
    stop: Arc<AtomicBool>,
}

impl ShardReader {
    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::Kinesis {
            stream: self.stream.clone(),
            message: format!("shard {}: {message}", self.shard),
        }
    }

    async fn iterator(&self, start: StartAt, after: Option<&str>) -> Result<Option<String>> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(self.shard.as_ref());
        req = match (after, start) {
            // Everything up to and including this record was handed on.
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, StartAt::Resume(p)) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(p.seq_text()),
            (None, StartAt::TrimHorizon) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            (None, StartAt::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartAt::Since(ms)) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(ms)),
        };
        let out = req.send().await.map_err(|e| self.fail(describe(&e)))?;
        Ok(out.shard_iterator().map(str::to_owned))
    }

    async fn run(&self, start: StartAt, out: &mpsc::Sender<Msg>) -> Result<()> {
        let skip_before = match start {
            StartAt::Resume(p) => Some(p),
            _ => None,
        };
        // Sequence number of the last Kinesis record handed on, for
        // re-acquiring an expired iterator.
        let mut last_seq: Option<String> = None;
        let mut iter = self.iterator(start, None).await?;
        let mut next_call = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut last_pos: Option<Position> = None;
        while let Some(it) = iter.take() {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            tokio::time::sleep_until(next_call.into()).await;
            let called = Instant::now();
            let resp = self
                .client
                .get_records()
                .shard_iterator(&it)
                .limit(self.max_records)
                .send()
                .await;
            let resp = match resp {
                Ok(r) => {
                    backoff = Duration::from_millis(100);
                    r
                }
                Err(e) => {
                    let svc = e.as_service_error();
                    if svc.is_some_and(|s| s.is_expired_iterator_exception()) {
                        tracing::info!(shard = %self.shard, "iterator expired: re-acquiring");
                        iter = self.iterator(start, last_seq.as_deref()).await?;
                        continue;
                    }
                    let fatal = svc.is_some_and(|s| {
                        s.is_resource_not_found_exception()
                            || s.is_access_denied_exception()
                            || s.is_invalid_argument_exception()
                    });
                    if fatal {
                        return Err(self.fail(describe(&e)));
                    }
                    // Throttling or a transient failure the SDK's own
                    // retries did not absorb: back off with jitter, keep going.
                    tracing::warn!(shard = %self.shard, error = %describe(&e), ?backoff, "GetRecords failed; retrying");
                    let jitter = rand::random::<u64>() % (backoff.as_millis() as u64 + 1);
                    next_call = Instant::now() + backoff + Duration::from_millis(jitter);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    iter = Some(it);
                    continue;
                }
            };
            let mut chunk = Chunk {
                shard: self.shard.clone(),
                arrival_ms: now_ms(),
                behind_ms: resp.millis_behind_latest(),
                ..Default::default()
            };
            let mut bytes = 0u64;
            for r in resp.records() {
                let seq = r.sequence_number();
                let data = r.data().as_ref();
                bytes += data.len() as u64;
                let Some(base) = Position::parse_seq(seq, 0) else {
                    return Err(self.fail(format!("unparseable sequence number {seq:?}")));
                };
                // The record's own arrival: the same whenever it is read.
                let arrival = r
                    .approximate_arrival_timestamp()
                    .and_then(|ts| ts.to_millis().ok())
                    .unwrap_or(chunk.arrival_ms);
                let mut push = |sub: u32, bytes: &[u8]| {
                    let pos = Position { sub, ..base };
                    if skip_before.is_some_and(|s| pos < s) {
                        return;
                    }
                    let a = chunk.buf.len();
                    chunk.buf.extend_from_slice(bytes);
                    chunk.records.push((a, chunk.buf.len(), pos));
                    chunk.arrivals.push(arrival);
                };
                match kpl::split(data) {
                    Ok(Kpl::Plain(b)) => push(0, b),
                    Ok(Kpl::Aggregated(users)) => {
                        for u in users {
                            push(u.sub_sequence_number, u.data);
                        }
                    }
                    // A producer's broken aggregate: pass it on whole, so it
                    // lands in the error prefix (as invalid_json) instead of
                    // stopping the shard.
                    Err(e) => {
                        tracing::warn!(shard = %self.shard, seq, error = %e, "malformed KPL aggregate");
                        push(0, data);
                    }
                }
                // Resume after this record: its sub-records are all handed on.
                last_pos = Some(Position {
                    sub: u32::MAX,
                    ..base
                });
                last_seq = Some(seq.to_owned());
            }
            chunk.consumed = bytes;
            chunk.next = last_pos.unwrap_or_else(|| skip_before.unwrap_or_default());
            iter = resp.next_shard_iterator().map(str::to_owned);
            chunk.end_of_shard = iter.is_none();
            let empty = resp.records().is_empty();
            let caught_up = empty && resp.millis_behind_latest().unwrap_or(0) == 0;
            if out.send(Msg::Batch { chunk, caught_up }).await.is_err() {
                return Ok(()); // the source is shutting down
            }
            // Stay within 5 calls/s and 2 MB/s per shard; poll gently at the tip.
            let gap = if empty {
                self.idle
            } else {
                MIN_CALL_GAP.max(Duration::from_millis(bytes * 1000 / READ_BYTES_PER_SEC))
            };
            next_call = called + gap;
        }
        Ok(())
    }
}
