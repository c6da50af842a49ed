//! The run loop: source chunks -> parallel transform -> route to buffers ->
//! parallel encode -> flush (catalog, intent, object, checkpoint).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use rayon::prelude::*;

use crate::buffer::{self, Buffer, FlushReason, Payload, Pending, Policy, RouteKind};
use crate::catalog::Catalog;
use crate::checkpoint::{self, CheckpointState, CheckpointStore, Delivered, Intent, Position};
use crate::encode::errors::{ErrorObject, ErrorRecord};
use crate::encode::parquet::{DictionaryAdvice, ParquetObject};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::partition::time_path;
use crate::sink::ObjectStore;
use crate::source::file::for_each_line;
use crate::source::{Chunk, Records, Source, SourceContext};
use crate::summary::Summary;
use crate::transform::dedup::DedupWindow;
use crate::transform::row::Row;
use crate::transform::{Outcome, Transformer};

/// Chunks read ahead of the transform; bounds memory held by the reader.
const READ_AHEAD: usize = 2;

/// Transformed chunks queued for routing: enough that the transform stage
/// keeps the cores busy while the routing loop flushes.
const TRANSFORM_AHEAD: usize = 2;

/// Chunks being transformed at once on the pool, so a core that finishes
/// its share of one chunk starts on the next.
const TRANSFORMS_IN_FLIGHT: usize = 2;

/// Objects written at once. Writes wait on the network (S3) or on fsync
/// (local lake), not on the CPU, so they get their own threads: on the
/// CPU pool they would leave cores idle while a flush's objects land.
const WRITE_THREADS: usize = 16;

/// On stop, how long to wait for chunks already read to come through the
/// transform stage.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Everything a run needs, assembled by the caller (CLI or tests).
pub struct Pipeline {
    transformer: Arc<Transformer>,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    /// None for sources that cannot resume (stdin): nothing to checkpoint.
    checkpoints: Option<Box<dyn CheckpointStore>>,
    policy: Policy,
    prefix: String,
    state: CheckpointState,
    delivered: Delivered,
    buffers: buffer::Buffers,
    /// Per shard, where reading resumes after the last processed chunk.
    read_next: BTreeMap<Arc<str>, Position>,
    /// Shards the source read to their end; finished once nothing of them
    /// is buffered and the checkpoint says so.
    ended: BTreeSet<String>,
    /// Shared with the source: shards durably finished.
    finished: Arc<Mutex<BTreeSet<String>>>,
    /// A flush failed after taking its buffers: checkpoints stay where they
    /// are from then on (the run is ending with an error).
    poisoned: bool,
    /// Unique per process, so object names never collide across writers.
    instance: String,
    counter: u64,
    stream: String,
    /// Per table, the window of recent record ids (None: no `record_id`,
    /// or dropping is off). Seeded here; a run moves them to the transform
    /// stage's thread (see [`mark_repeats`]), so a pipeline runs once.
    dedup: Vec<Option<DedupWindow>>,
    /// The windows' memory, kept up to date by the transform stage: it
    /// counts against the memory cap.
    window_bytes: Arc<AtomicUsize>,
    /// Threads that write objects (see [`WRITE_THREADS`]).
    writers: rayon::ThreadPool,
    /// Per table (registry order): which columns' dictionaries pay, learned
    /// from its objects (see [`DictionaryAdvice`]).
    dictionaries: Vec<Arc<DictionaryAdvice>>,
    pub summary: Summary,
}

/// Settings of a run that are not components.
pub struct PipelineOptions {
    pub policy: Policy,
    pub prefix: String,
    /// Producer-duplicate window per table with a `record_id`: (ids, ms);
    /// None turns dropping off.
    pub dedup: Option<(usize, i64)>,
}

impl Pipeline {
    pub fn new(
        transformer: Arc<Transformer>,
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        checkpoints: Option<Box<dyn CheckpointStore>>,
        opts: PipelineOptions,
    ) -> Result<Pipeline> {
        for t in transformer.registry().tables() {
            catalog.ensure_table(t)?;
        }
        let mut checkpoints = checkpoints;
        let (mut state, delivered) = match checkpoints.as_deref_mut() {
            Some(cp) => checkpoint::recover(cp, store.as_ref())?,
            None => (CheckpointState::default(), Delivered::default()),
        };
        if let (Some(cp), None) = (checkpoints.as_deref_mut(), state.started_ms) {
            // Durable before anything is read: see `started_ms`.
            state.started_ms = Some(crate::source::now_ms());
            state.version = checkpoint::STATE_VERSION;
            cp.save(&state)?;
        }
        let mut dedup: Vec<Option<DedupWindow>> = Vec::new();
        let opts_dedup = opts.dedup.map(|(ids, ms)| {
            let tables = transformer
                .registry()
                .tables()
                .iter()
                .filter(|t| t.ext.record_id.is_some())
                .count();
            let budget = buffer::window_budget(opts.policy.memory_cap);
            let most = DedupWindow::ids_within(budget, tables);
            if ids > most {
                tracing::warn!(
                    window_ids = ids,
                    tables,
                    memory_cap_mib = opts.policy.memory_cap >> 20,
                    "the duplicate windows would crowd the buffers out of the memory cap; remembering {most} ids per table instead (raise buffer.memory_cap_mib or lower dedup.window_ids to silence this)"
                );
            }
            (ids.min(most), ms)
        });
        for t in transformer.registry().tables() {
            dedup.push(match (&t.ext.record_id, opts_dedup) {
                (Some(field), Some((ids, ms))) => {
                    let mut w = DedupWindow::new(ids, ms);
                    seed_window(&mut w, store.as_ref(), &opts.prefix, t, field, ms)?;
                    Some(w)
                }
                _ => None,
            });
        }
        let dictionaries = transformer
            .registry()
            .tables()
            .iter()
            .map(|_| Arc::default())
            .collect();
        Ok(Pipeline {
            transformer,
            store,
            catalog,
            checkpoints,
            policy: opts.policy,
            prefix: opts.prefix,
            state,
            delivered,
            buffers: buffer::Buffers::default(),
            read_next: BTreeMap::new(),
            ended: BTreeSet::new(),
            finished: Arc::new(Mutex::new(BTreeSet::new())),
            poisoned: false,
            instance: uuid::Uuid::now_v7().simple().to_string(),
            counter: 0,
            stream: String::new(),
            window_bytes: Arc::new(AtomicUsize::new(window_memory(&dedup))),
            dictionaries,
            dedup,
            writers: rayon::ThreadPoolBuilder::new()
                .num_threads(WRITE_THREADS)
                .thread_name(|i| format!("lakehose-write-{i}"))
                .build()
                .map_err(|e| Error::sink("writer threads", e))?,
            summary: Summary::default(),
        })
    }

    /// Run until the source is exhausted or `stop` is set, then flush
    /// everything and checkpoint. `progress` is called after every chunk.
    pub fn run(
        &mut self,
        source: Box<dyn Source>,
        stop: Arc<AtomicBool>,
        mut progress: impl FnMut(&Summary),
    ) -> Result<()> {
        let started = Instant::now();
        self.stream = source.name().to_owned();
        if !self.state.shards.is_empty() {
            tracing::info!(shards = ?self.state.shards, "resuming from checkpoint");
        }
        let (tx, rx) = crossbeam_channel::bounded::<Result<Chunk>>(READ_AHEAD);
        let ctx = SourceContext::new(self.state.clone(), stop.clone());
        self.finished = ctx.finished.clone();
        let reader = std::thread::Builder::new()
            .name("lakehose-source".into())
            .spawn(move || {
                let tx2 = tx.clone();
                if let Err(e) = source.run(&ctx, tx) {
                    let _ = tx2.send(Err(e));
                }
            })
            .map_err(|e| Error::Input {
                path: "source thread".into(),
                source: e,
            })?;
        // Transforming runs a stage ahead of routing, on its own thread: the
        // routing loop is single-threaded, and this way the cores transform
        // the next chunk while it runs. The duplicate check, which must see
        // records in order, runs there too: off the routing loop, which is
        // the pipeline's critical path.
        let (ttx, trx) = crossbeam_channel::bounded::<Result<TransformedChunk>>(TRANSFORM_AHEAD);
        let transformer = self.transformer.clone();
        let mut windows = std::mem::take(&mut self.dedup);
        let window_bytes = self.window_bytes.clone();
        std::thread::Builder::new()
            .name("lakehose-transform".into())
            .spawn(move || transform_stage(&transformer, &mut windows, &window_bytes, &rx, &ttx))
            .map_err(|e| Error::Input {
                path: "transform thread".into(),
                source: e,
            })?;
        let result = self.main_loop(&trx, &stop, &mut progress);
        // On error, still write what is buffered: it is valid, its intents
        // keep a restart from writing it twice, and unless a flush failed
        // the checkpoint moves past it.
        let mut flushed = self.flush_all(FlushReason::Shutdown);
        if flushed.is_ok() && !self.state.owed_partitions.is_empty() {
            // Delivered, but Athena cannot see these partitions yet: say so
            // with a failing exit. With a checkpoint store they are retried
            // at the next start.
            let n: usize = self.state.owed_partitions.values().map(|s| s.len()).sum();
            flushed = Err(Error::catalog(
                "catalog",
                format!("{n} partition(s) written but not registered: the catalog kept failing (see the warnings); they are retried at the next start"),
            ));
        }
        self.summary.elapsed = started.elapsed();
        self.summary.peak_rss_bytes = crate::summary::peak_rss_bytes();
        drop(trx);
        if result.is_ok() && flushed.is_ok() {
            // A reader blocked on stdin cannot be woken: detach rather than hang.
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        progress(&self.summary);
        result.and(flushed)
    }

    fn main_loop(
        &mut self,
        rx: &crossbeam_channel::Receiver<Result<TransformedChunk>>,
        stop: &AtomicBool,
        progress: &mut impl FnMut(&Summary),
    ) -> Result<()> {
        let tick =
            Duration::from_millis(500).min(self.policy.interval.max(Duration::from_millis(10)));
        loop {
            if stop.load(Ordering::Relaxed) {
                // Take what was already read, including a chunk still in
                // the transform stage, then stop. A source blocked on
                // stdin sends nothing more: the grace period ends the wait.
                while let Ok(msg) = rx.recv_timeout(STOP_GRACE) {
                    self.process(msg?)?;
                }
                return Ok(());
            }
            match rx.recv_timeout(tick) {
                Ok(msg) => {
                    self.process(msg?)?;
                    progress(&self.summary);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            self.flush_due()?;
        }
    }

    /// Route a transformed chunk's records to their buffers and append
    /// them there.
    fn process(&mut self, t: TransformedChunk) -> Result<()> {
        let TransformedChunk {
            mut chunk,
            parts,
            repeats,
        } = t;
        if !chunk.retire.is_empty() {
            for s in &chunk.retire {
                self.state.shards.remove(s);
                self.state.finished.remove(s);
            }
            return Ok(());
        }
        if let Some(ms) = chunk.behind_ms {
            self.summary.behind_ms.insert(chunk.shard.to_string(), ms);
        }
        let registry = self.transformer.registry().clone();
        let (rows, outcomes): (Vec<Row>, Vec<Vec<Outcome>>) =
            parts.into_iter().map(|p| (p.rows, p.outcomes)).unzip();
        let outcomes = outcomes
            .into_iter()
            .enumerate()
            .flat_map(|(part, list)| list.into_iter().map(move |o| (part as u32, o)));
        // Nothing from here to the appends below may fail: a record's
        // position is noted in its buffer's ranges before its row is
        // appended, and a flush on the way out of a failed run would save
        // intents covering records its objects do not hold.
        for (i, (part, outcome)) in outcomes.enumerate() {
            let pos = chunk.records[i].2;
            self.summary.records_in += 1;
            // An error route is made here; a good record's is in its row.
            let error_route: String;
            let (route, kind, pending) = match outcome {
                Outcome::Ok(tr) => {
                    // Made only when the route's buffer is: see below.
                    let kind = NewKind::Data {
                        table: tr.table,
                        partition_at: tr.partition_at as usize,
                    };
                    (
                        tr.route(&rows[part as usize]),
                        kind,
                        Pending::Row {
                            part,
                            top: tr.top,
                            input_bytes: tr.input_bytes,
                        },
                    )
                }
                Outcome::Failed(f) => {
                    let table_name = f.table.map(|t| registry.by_index(t).name.clone());
                    error_route = format!(
                        "errors/{}/{}",
                        table_name.as_deref().unwrap_or("_unrouted"),
                        f.category
                    );
                    let rec = ErrorRecord {
                        attempts_made: 1,
                        arrival_timestamp: chunk.arrival(i),
                        error_code: f.category.as_str().to_owned(),
                        error_message: f.message,
                        raw_data: ErrorRecord::encode_raw(&f.data),
                        sequence_number: pos.seq_text(),
                        sub_sequence_number: pos.sub,
                        stream: self.stream.clone(),
                        shard_id: chunk.shard.to_string(),
                        table: table_name,
                        details: f.details,
                        masked_fields: f.masked_fields,
                    };
                    let kind = NewKind::Known(RouteKind::Errors {
                        table: f.table,
                        category: f.category,
                    });
                    (error_route.as_str(), kind, Pending::Error(Box::new(rec)))
                }
            };
            let repeat = repeats.get(i).copied().unwrap_or(false);
            if !self.delivered.is_empty() && self.delivered.covers(route, &chunk.shard, pos) {
                self.summary.skipped_delivered += 1;
                continue;
            }
            if repeat {
                self.summary.duplicates_dropped += 1;
                continue;
            }
            let buf = match self.buffers.get_mut(route) {
                Some(b) => b,
                None => {
                    let kind = match kind {
                        NewKind::Known(k) => k,
                        NewKind::Data {
                            table,
                            partition_at,
                        } => RouteKind::Data {
                            table,
                            partition: route[partition_at..].to_owned(),
                        },
                    };
                    let payload = match &kind {
                        RouteKind::Data { table, .. } => {
                            Payload::Data(Box::new(ParquetObject::new(
                                registry.by_index(*table),
                                self.dictionaries[*table].clone(),
                            )))
                        }
                        RouteKind::Errors { .. } => Payload::Errors(ErrorObject::new()),
                    };
                    self.buffers.entry(route.to_owned()).or_insert(Buffer::new(
                        kind,
                        payload,
                        chunk.arrival_ms,
                    ))
                }
            };
            buf.note_position(&chunk.shard, pos);
            buf.pending.push(pending);
        }
        // A chunk that consumed nothing (a stream poll at the tip) says
        // nothing new about where to resume.
        if chunk.consumed > 0 || !chunk.records.is_empty() {
            self.read_next.insert(chunk.shard.clone(), chunk.next);
        }
        // The rows own their values by now: the block can be read into again.
        if let Some(r) = chunk.recycle.take() {
            r.give(std::mem::take(&mut chunk.buf));
        }
        self.summary.bytes_in += chunk.consumed;
        // Appended on this thread, not on the pool: there the appends queued
        // behind the next chunk's transform jobs while this loop waited on
        // them. (Moving them into the transform workers, as Arrow runs
        // grouped by route, cost more than it saved: the runs must be
        // copied again here.)
        // Each buffer's column ends are asked for while the one before is
        // appended (see `BatchBuilder::prefetch_tails`).
        let mut due: Vec<&mut Buffer> = self
            .buffers
            .values_mut()
            .filter(|b| !b.pending.is_empty())
            .collect();
        for i in 0..due.len() {
            if let Some(next) = due.get(i + 1) {
                next.prefetch();
            }
            due[i].drain_pending(&rows);
        }
        if chunk.end_of_shard {
            // Make the shard's records durable now: its children wait on it.
            self.ended.insert(chunk.shard.to_string());
            let holding: Vec<(String, FlushReason)> = self
                .buffers
                .iter()
                .filter(|(_, b)| b.ranges.contains_key(&chunk.shard))
                .map(|(r, _)| (r.clone(), FlushReason::ShardEnd))
                .collect();
            self.flush(holding)?;
        }
        Ok(())
    }

    fn flush_due(&mut self) -> Result<()> {
        // The duplicate windows live as long as the run: they count against
        // the memory cap, leaving the buffers less.
        let windows = self.window_bytes.load(Ordering::Relaxed);
        let due = buffer::select(&self.buffers, &self.policy, Instant::now(), windows);
        if due.is_empty() {
            return Ok(());
        }
        self.flush(due)
    }

    fn flush_all(&mut self, reason: FlushReason) -> Result<()> {
        let all: Vec<(String, FlushReason)> =
            self.buffers.keys().map(|k| (k.clone(), reason)).collect();
        // Even with nothing buffered, the read position may have moved (blank
        // lines, skipped records): record it.
        self.flush(all)
    }

    /// Turn buffers into objects, in the order that keeps exactly-once:
    /// register partitions, save intents, write objects, advance checkpoints.
    fn flush(&mut self, routes: Vec<(String, FlushReason)>) -> Result<()> {
        let r = self.flush_inner(routes);
        if r.is_err() {
            // The buffers this flush took are gone from memory but not
            // durable: no checkpoint may move past them any more. Intents
            // of later flushes are still saved, so what does land is not
            // written twice after the restart.
            self.poisoned = true;
        }
        r
    }

    fn flush_inner(&mut self, routes: Vec<(String, FlushReason)>) -> Result<()> {
        let registry = self.transformer.registry().clone();
        let mut taken: Vec<(String, Buffer)> = routes
            .iter()
            .filter_map(|(r, _)| self.buffers.remove(r).map(|b| (r.clone(), b)))
            .collect();
        for (_, reason) in &routes {
            *self
                .summary
                .flushes
                .entry(format!("{reason:?}").to_lowercase())
                .or_default() += 1;
        }
        taken.sort_by(|a, b| a.0.cmp(&b.0));
        // (intent, route kind, rows)
        let mut objects: Vec<(Intent, RouteKind, u64)> = Vec::with_capacity(taken.len());
        for (route, b) in &taken {
            self.counter += 1;
            let name = object_name(crate::source::now_ms(), &self.instance, self.counter);
            let key = match &b.kind {
                RouteKind::Data { table, partition } => format!(
                    "{}{}/{}/{}.snappy.parquet",
                    self.prefix,
                    registry.by_index(*table).name,
                    partition,
                    name
                ),
                RouteKind::Errors { .. } => format!(
                    "{}{}/{}/{}.ndjson.gz",
                    self.prefix,
                    route,
                    time_path(b.opened_ms),
                    name
                ),
            };
            let intent = Intent {
                key,
                route: route.clone(),
                ranges: b.ranges.iter().map(|(s, r)| (s.to_string(), *r)).collect(),
            };
            objects.push((intent, b.kind.clone(), b.rows()));
        }
        // 1. Partitions are registered before any of their objects is visible.
        let mut parts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (_, kind, _) in &objects {
            if let RouteKind::Data { table, partition } = kind {
                parts.entry(*table).or_default().push(partition.clone());
            }
        }
        // Partitions owed from earlier failures go first. A catalog outage
        // must not stop delivery: what cannot be registered now is owed,
        // saved with the intents below, and retried at every flush.
        let mut owed = std::mem::take(&mut self.state.owed_partitions);
        for (table, ps) in &parts {
            owed.entry(registry.by_index(*table).name.clone())
                .or_default()
                .extend(ps.iter().cloned());
        }
        for (table, ps) in owed {
            let Some(t) = registry.get(&table) else {
                continue; // a table whose schema was removed
            };
            let ps: Vec<String> = ps.into_iter().collect();
            if let Err(e) = self.catalog.register_partitions(t, &ps) {
                tracing::warn!(table, partitions = ps.len(), error = %e, "catalog registration failed; owed and retried at the next flush");
                self.state
                    .owed_partitions
                    .insert(table, ps.into_iter().collect());
            }
        }
        self.summary.partitions_owed = self
            .state
            .owed_partitions
            .values()
            .map(|s| s.len() as u64)
            .sum();
        // 2. Intents, so a crash after any object is written is recoverable.
        if let Some(cp) = self.checkpoints.as_deref_mut() {
            if !objects.is_empty() || !self.state.owed_partitions.is_empty() {
                self.state
                    .intents
                    .extend(objects.iter().map(|o| o.0.clone()));
                self.state.version = checkpoint::STATE_VERSION;
                cp.save(&self.state)?;
                failpoint::hit("after_intent");
            }
        }
        // 3. Objects.
        let jobs = objects
            .iter()
            .zip(taken)
            .map(|((intent, _, _), (_, b))| (intent.key.as_str(), b.payload))
            .collect();
        let sizes = encode_and_write(&self.writers, &*self.store, jobs)?;
        // Counted only now that the records are durable, so a failed run's
        // summary never claims more than the lake holds.
        for ((_, kind, rows), size) in objects.iter().zip(sizes) {
            self.summary.objects += 1;
            self.summary.bytes_out += size as u64;
            match kind {
                RouteKind::Data { .. } => {
                    self.summary.data_objects += 1;
                    self.summary.written += rows;
                }
                RouteKind::Errors { category, .. } => {
                    self.summary.error_objects += 1;
                    *self.summary.errored.entry(category.as_str()).or_default() += rows;
                }
            }
        }
        // 4. Checkpoints: per shard, the lowest position still buffered, or
        // where reading resumes when nothing of that shard is buffered.
        if self.poisoned {
            return Ok(());
        }
        if let Some(cp) = self.checkpoints.as_deref_mut() {
            let mut marks: BTreeMap<String, Position> = self
                .read_next
                .iter()
                .map(|(s, p)| (s.to_string(), *p))
                .collect();
            for b in self.buffers.values() {
                for (shard, (first, _)) in &b.ranges {
                    if let Some(m) = marks.get_mut(shard.as_ref()) {
                        *m = (*m).min(*first);
                    }
                }
            }
            // Ended shards with nothing left in any buffer are finished.
            let done: Vec<String> = self
                .ended
                .iter()
                .filter(|s| {
                    !self
                        .buffers
                        .values()
                        .any(|b| b.ranges.keys().any(|k| k.as_ref() == s.as_str()))
                })
                .cloned()
                .collect();
            for s in &done {
                marks.remove(s);
                self.ended.remove(s);
                self.read_next.remove(s.as_str());
            }
            let changed = !done.is_empty()
                || marks
                    .iter()
                    .any(|(s, p)| self.state.shards.get(s) != Some(p));
            if changed || !objects.is_empty() {
                self.state.shards.extend(marks);
                for s in &done {
                    self.state.shards.remove(s);
                    self.state.finished.insert(s.clone());
                }
                self.state.prune();
                failpoint::hit("before_commit");
                cp.save(&self.state)?;
                if !done.is_empty() {
                    tracing::info!(shards = ?done, "shard finished: read to its end and durable");
                    self.summary.shards_finished += done.len() as u64;
                    self.finished.lock().expect("finished lock").extend(done);
                }
            }
        }
        Ok(())
    }
}

/// Encode objects on the CPU pool and hand each to the writer threads as
/// soon as it is encoded: the writes wait on fsync or the network while the
/// rest are still being encoded (encoding all first left the cores idle
/// for those waits). Returns each object's size, in order, once all have
/// landed; the first error, if any (the others are still written or
/// tried: their intents are saved either way).
fn encode_and_write(
    writers: &rayon::ThreadPool,
    store: &dyn ObjectStore,
    jobs: Vec<(&str, Payload)>,
) -> Result<Vec<usize>> {
    let count = jobs.len();
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        first_error.lock().expect("error slot").get_or_insert(e);
    };
    // Each written object's bytes, by position. Freed here, on this thread,
    // once all have landed: freed on the writer threads, the allocator kept
    // them (peak memory at a 32 MiB cap went from 66 to 80-98 MiB).
    let landed: Mutex<Vec<(usize, Vec<u8>)>> = Mutex::new(Vec::with_capacity(count));
    let landed_ref = &landed;
    // In place: the encoding runs on the CPU pool (not the writers'), the
    // writes are spawned into the writers' pool and waited for here.
    writers.in_place_scope(|scope| {
        jobs.into_par_iter()
            .enumerate()
            .for_each(|(i, (key, payload))| {
                let encoded = match payload {
                    Payload::Data(o) => o.finish(),
                    Payload::Errors(o) => o.finish(),
                };
                match encoded {
                    Ok(bytes) => scope.spawn(move |_| match store.put(key, &bytes) {
                        Ok(()) => {
                            failpoint::hit("after_put");
                            landed_ref.lock().expect("landed").push((i, bytes));
                        }
                        Err(e) => fail(e),
                    }),
                    Err(e) => fail(e),
                }
            });
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    let mut sizes = vec![0; count];
    for (i, bytes) in landed.into_inner().expect("landed") {
        sizes[i] = bytes.len();
    }
    Ok(sizes)
}

/// The route kind of a record whose route may have no buffer yet. A data
/// route's kind owns a copy of the partition path: made only for a new
/// buffer, not for every record.
enum NewKind {
    Known(RouteKind),
    Data { table: usize, partition_at: usize },
}

/// A chunk, what the transform made of each of its records, and which of
/// them repeat a record id the duplicate window holds.
struct TransformedChunk {
    chunk: Chunk,
    /// The outcomes of the chunk's records in order, part after part.
    parts: Vec<Part>,
    /// Per record; empty when no table drops duplicates.
    repeats: Vec<bool>,
}

/// What one transform job made of a run of a chunk's records: their
/// outcomes, and the rows of the good ones, all in one [`Row`] (two
/// allocations per job, not two per record, and freed together).
struct Part {
    rows: Row,
    outcomes: Vec<Outcome>,
}

impl TransformedChunk {
    #[cfg(test)]
    fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.parts.iter().flat_map(|p| &p.outcomes)
    }
}

/// The transform stage: chunks from the source are transformed on the pool,
/// up to [`TRANSFORMS_IN_FLIGHT`] at once (waiting on each in turn left the
/// cores idle at a chunk's tail and during the hand-off), checked against
/// the duplicate windows in order, and passed on in order. A finished chunk
/// is passed on at once, never held until the next one arrives: a Kinesis
/// source may be waiting for it to be durable (a parent shard's last
/// records) before it reads on.
fn transform_stage(
    transformer: &Arc<Transformer>,
    windows: &mut [Option<DedupWindow>],
    window_bytes: &AtomicUsize,
    rx: &crossbeam_channel::Receiver<Result<Chunk>>,
    tx: &crossbeam_channel::Sender<Result<TransformedChunk>>,
) {
    let mut inflight: VecDeque<crossbeam_channel::Receiver<TransformJob>> =
        VecDeque::with_capacity(TRANSFORMS_IN_FLIGHT);
    // Pass on the oldest job's result; false when the pipeline is gone.
    let mut pass_on = |job: std::result::Result<TransformJob, crossbeam_channel::RecvError>| {
        let out = match job {
            Ok((chunk, Ok(parts))) => {
                let repeats = mark_repeats(windows, &chunk, &parts);
                window_bytes.store(window_memory(windows), Ordering::Relaxed);
                Ok(TransformedChunk {
                    chunk,
                    parts,
                    repeats,
                })
            }
            Ok((_, Err(message))) => Err(Error::Internal {
                stage: "transform",
                message,
            }),
            Err(_) => Err(Error::Internal {
                stage: "transform",
                message: "a transform job ended without a result".into(),
            }),
        };
        tx.send(out).is_ok()
    };
    let never = crossbeam_channel::never();
    let mut source_open = true;
    while source_open || !inflight.is_empty() {
        let msg = match inflight.front() {
            None => rx.recv().ok(),
            Some(oldest) => {
                let full = inflight.len() >= TRANSFORMS_IN_FLIGHT;
                let next = if full || !source_open { &never } else { rx };
                crossbeam_channel::select! {
                    recv(oldest) -> job => {
                        inflight.pop_front();
                        if !pass_on(job) {
                            return;
                        }
                        continue;
                    }
                    // Never more than the limit in flight, nor reading on
                    // once the source has closed.
                    recv(next) -> msg => msg.ok(),
                }
            }
        };
        match msg {
            None => source_open = false,
            Some(Ok(chunk)) => inflight.push_back(spawn_transform(transformer.clone(), chunk)),
            Some(Err(e)) => {
                // In order: what was read before the error goes first.
                while let Some(oldest) = inflight.pop_front() {
                    if !pass_on(oldest.recv()) {
                        return;
                    }
                }
                if tx.send(Err(e)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Transform a chunk on the pool; its result arrives on the receiver.
fn spawn_transform(
    transformer: Arc<Transformer>,
    chunk: Chunk,
) -> crossbeam_channel::Receiver<TransformJob> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    rayon::spawn(move || {
        // A panic in a spawned job would abort the process (rayon's
        // default): report it as an error instead.
        let mut chunk = chunk;
        let parts = std::panic::catch_unwind(AssertUnwindSafe(|| {
            transform_chunk(&transformer, &mut chunk)
        }))
        .map_err(|p| panic_message(p.as_ref()));
        let _ = tx.send((chunk, parts));
    });
    rx
}

/// A chunk and what the transform made of it, or why it could not.
type TransformJob = (Chunk, std::result::Result<Vec<Part>, String>);

/// The text of a caught panic's payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Which of a chunk's records repeat a record id seen before. Every valid
/// record enters its table's window, delivered or not, so later repeats of
/// a record a previous run wrote are caught; records are taken in order, so
/// the first of two copies is the one kept.
fn mark_repeats(windows: &mut [Option<DedupWindow>], chunk: &Chunk, parts: &[Part]) -> Vec<bool> {
    if windows.iter().all(Option::is_none) {
        return Vec::new();
    }
    // (table, digest) of each record a window checks, in order.
    let ids: Vec<Option<(usize, u64)>> = parts
        .iter()
        .flat_map(|p| &p.outcomes)
        .map(|o| match o {
            Outcome::Ok(tr) => tr
                .id_digest
                .filter(|_| matches!(windows.get(tr.table), Some(Some(_))))
                .map(|d| (tr.table, d)),
            Outcome::Failed(_) => None,
        })
        .collect();
    let mut repeats = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if let Some(Some((t, d))) = ids.get(i + REPEAT_PREFETCH) {
            if let Some(w) = &windows[*t] {
                w.prefetch(*d, REPEAT_PREFETCH);
            }
        }
        repeats.push(match id {
            Some((t, d)) => windows[*t]
                .as_mut()
                .is_some_and(|w| w.is_repeat(*d, chunk.arrival(i))),
            None => false,
        });
    }
    repeats
}

/// How many records ahead [`mark_repeats`] prefetches a window's slots:
/// enough to cover a miss to memory at a few nanoseconds per check.
const REPEAT_PREFETCH: usize = 16;

fn window_memory(windows: &[Option<DedupWindow>]) -> usize {
    windows
        .iter()
        .flatten()
        .map(DedupWindow::memory_bytes)
        .sum()
}

/// Transform a chunk's records in parallel, in runs of at least
/// [`MIN_PART_RECORDS`], a few per thread so a core that finishes early
/// takes another. A good record's route is made there too: the routing
/// loop runs on one thread, so the less it does per record the better.
/// An unsplit chunk's lines are cut here too (see [`transform_lines`]).
fn transform_chunk(t: &Transformer, chunk: &mut Chunk) -> Vec<Part> {
    if !chunk.retire.is_empty() {
        return Vec::new();
    }
    if let Some(base) = chunk.unsplit.take() {
        let (parts, records) = transform_lines(t, chunk, base);
        chunk.records = records;
        return parts;
    }
    let n = chunk.records.len();
    let per_part = n
        .div_ceil(4 * rayon::current_num_threads())
        .max(MIN_PART_RECORDS);
    (0..n.div_ceil(per_part))
        .into_par_iter()
        .map(|p| {
            let range = p * per_part..((p + 1) * per_part).min(n);
            let bytes: usize = chunk.records[range.clone()].iter().map(|r| r.1 - r.0).sum();
            let mut rows = t.rows_for(range.len(), bytes);
            let outcomes = range
                .map(|i| t.transform(chunk.record(i), chunk.arrival(i), &mut rows))
                .collect();
            Part { rows, outcomes }
        })
        .collect()
}

/// The fewest records a transform job takes: fewer cost more in hand-offs
/// than they gain in balance.
const MIN_PART_RECORDS: usize = 256;

/// Transform an unsplit chunk's lines (see [`Chunk::unsplit`]; `base` is
/// its offset) in parallel: its bytes are cut into runs of whole lines, a
/// few per thread, and each run finds its lines as it transforms them, so
/// the parse reads a line from the core's own cache right after the
/// newline search brought it in, not from the shared cache after the
/// source thread's pass over the whole block. The search still pays for
/// the first read of the input from memory (its share of the CPU samples,
/// 2-6% from run to run, did not move). Returns the parts and the
/// records, in order.
fn transform_lines(t: &Transformer, chunk: &Chunk, base: u64) -> (Vec<Part>, Records) {
    debug_assert!(
        chunk.arrivals.is_empty(),
        "unsplit chunks share one arrival"
    );
    let bytes = chunk.bytes();
    let runs = (bytes.len() / MIN_PART_BYTES).clamp(1, 4 * rayon::current_num_threads());
    let step = bytes.len().div_ceil(runs);
    // The start of the first line at or after `at`.
    let line_at = |at: usize| match at {
        0 => 0,
        _ if at >= bytes.len() => bytes.len(),
        _ => memchr::memchr(b'\n', &bytes[at - 1..]).map_or(bytes.len(), |n| at + n),
    };
    let runs: Vec<(Part, Records)> = (0..runs)
        .into_par_iter()
        .map(|r| {
            let (from, to) = (line_at(r * step), line_at((r + 1) * step));
            let guess = (to - from) / LINE_BYTES_GUESS + 1;
            let mut rows = t.rows_for(guess, to - from);
            let mut outcomes = Vec::with_capacity(guess);
            let mut records = Vec::with_capacity(guess);
            for_each_line(bytes, from, to, |a, b, line| {
                outcomes.push(t.transform(&bytes[a..b], chunk.arrival_ms, &mut rows));
                records.push((a, b, Position::new(u128::from(base) + line as u128, 0)));
            });
            (Part { rows, outcomes }, records)
        })
        .collect();
    let (parts, records): (Vec<Part>, Vec<_>) = runs.into_iter().unzip();
    (parts, records.concat())
}

/// The fewest bytes of lines a transform job takes (about
/// [`MIN_PART_RECORDS`] taxi events).
const MIN_PART_BYTES: usize = 128 << 10;

/// Bytes per line assumed to size a run's rows before its lines are
/// found (the taxi events average 636); a wrong guess costs a regrowth or
/// unused room, nothing else.
const LINE_BYTES_GUESS: usize = 512;

/// An object's name: the flush time first (12 hex digits of epoch ms), so
/// names sort by time and a restart can tell recent objects by name; then
/// the writer instance and its counter, so names never collide.
fn object_name(flush_ms: i64, instance: &str, counter: u64) -> String {
    format!("part-{flush_ms:012x}-{instance}-{counter:06}")
}

/// The flush time an [`object_name`] carries.
fn flush_ms_of(name: &str) -> Option<i64> {
    i64::from_str_radix(name.strip_prefix("part-")?.get(..12)?, 16).ok()
}

/// Seed a table's duplicate window from the lake: the ids of the data
/// objects this table got within the window's time (object names carry
/// their flush time as 12 hex digits of epoch ms),
/// so duplicates of records a previous run made durable are still caught
/// after a restart. Only top-level ids can be read back this way.
fn seed_window(
    w: &mut DedupWindow,
    store: &dyn ObjectStore,
    prefix: &str,
    t: &crate::schema::TableSchema,
    field: &str,
    window_ms: i64,
) -> Result<()> {
    if field.contains('.') {
        return Ok(());
    }
    let since = crate::source::now_ms().saturating_sub(window_ms);
    let mut objects: Vec<(i64, String)> = store
        .list(&format!("{prefix}{}/", t.name))?
        .into_iter()
        .filter_map(|k| {
            let ms = flush_ms_of(k.rsplit('/').next()?)?;
            (k.ends_with(".snappy.parquet") && ms >= since).then_some((ms, k))
        })
        .collect();
    objects.sort();
    let column = field.to_lowercase();
    for (ms, key) in objects {
        let Some(bytes) = store.get(&key)? else {
            continue;
        };
        match crate::encode::parquet::read_string_column(bytes, &column) {
            Ok(ids) => {
                for id in ids {
                    w.is_repeat(DedupWindow::digest(&id), ms);
                }
            }
            // One unreadable object must not stop the service.
            Err(e) => tracing::warn!(key, error = %e, "cannot read ids for the duplicate window"),
        }
    }
    if !w.is_empty() {
        tracing::info!(table = %t.name, ids = w.len(), "duplicate window seeded from the lake");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Registry, TableSchema};
    use crate::transform::Routing;

    fn chunk(n: u64) -> Chunk {
        let buf = format!("{{\"n\": {n}}}").into_bytes();
        Chunk {
            shard: Arc::from("s"),
            records: vec![(0, buf.len(), Position::new(u128::from(n), 0))],
            buf,
            next: Position::new(u128::from(n) + 1, 0),
            consumed: 1,
            ..Default::default()
        }
    }

    /// Chunks come out in order, each as soon as it is transformed: the
    /// stage never holds one back until the next arrives (a Kinesis source
    /// waits for a parent shard's last chunk to be durable before it reads
    /// on); a source error comes after what was read before it.
    #[test]
    fn transform_stage_passes_chunks_on_in_order_without_waiting_for_more() {
        let s = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", std::path::Path::new("t.json")).unwrap();
        let registry = Arc::new(Registry::from_tables(vec![t]));
        let transformer = Arc::new(
            Transformer::new(registry, b"k", Routing::Fixed(0), "src".into(), 300).unwrap(),
        );
        let (tx, rx) = crossbeam_channel::bounded(16);
        let (ttx, trx) = crossbeam_channel::bounded(16);
        let stage = std::thread::spawn(move || {
            let mut windows = vec![None];
            transform_stage(&transformer, &mut windows, &AtomicUsize::new(0), &rx, &ttx)
        });
        let next = |out: Result<TransformedChunk>| {
            let out = out.expect("a transformed chunk");
            let outcomes: Vec<&Outcome> = out.outcomes().collect();
            assert!(matches!(outcomes[..], [Outcome::Ok(_)]));
            out.chunk.next
        };
        // One at a time, the source open all along.
        for n in 0..5u64 {
            tx.send(Ok(chunk(n))).unwrap();
            let out = trx
                .recv_timeout(Duration::from_secs(30))
                .expect("passed on without waiting for the next chunk");
            assert_eq!(next(out), Position::new(u128::from(n) + 1, 0));
        }
        // Many at once, then an error, then the end of the source.
        for n in 5..12u64 {
            tx.send(Ok(chunk(n))).unwrap();
        }
        tx.send(Err(Error::Internal {
            stage: "source",
            message: "boom".into(),
        }))
        .unwrap();
        drop(tx);
        let mut got: Vec<Result<TransformedChunk>> = trx.iter().collect();
        stage.join().unwrap();
        assert!(matches!(
            got.pop(),
            Some(Err(Error::Internal {
                stage: "source",
                ..
            }))
        ));
        let positions: Vec<Position> = got.into_iter().map(next).collect();
        let want: Vec<Position> = (6..13u128).map(|n| Position::new(n, 0)).collect();
        assert_eq!(positions, want);
    }

    /// Each record of a transformed chunk, in order: its position, and its
    /// `n` (a good record) or its error category (a bad one).
    fn transformed(t: &Transformer, mut c: Chunk) -> Vec<(Position, String)> {
        let parts = transform_chunk(t, &mut c);
        assert!(c.unsplit.is_none(), "cut by the transform");
        let outcomes = parts
            .iter()
            .flat_map(|p| p.outcomes.iter().map(move |o| (p, o)));
        c.records
            .iter()
            .zip(outcomes)
            .map(|(r, (part, o))| {
                let what = match o {
                    Outcome::Ok(tr) => format!("{:?}", part.rows.cells[tr.top as usize]),
                    Outcome::Failed(f) => f.category.as_str().to_owned(),
                };
                (r.2, what)
            })
            .collect()
    }

    /// An unsplit chunk (a file's whole lines, see `Chunk::unsplit`) is cut
    /// into runs and lines by the transform: the records, their positions
    /// and their outcomes are those of the same chunk cut up front, however
    /// many runs its size makes and wherever the run boundaries fall.
    #[test]
    fn unsplit_chunks_transform_as_if_cut_up_front() {
        let s = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", std::path::Path::new("t.json")).unwrap();
        let registry = Arc::new(Registry::from_tables(vec![t]));
        let t = Transformer::new(registry, b"k", Routing::Fixed(0), "src".into(), 300).unwrap();
        // (lines, padding per good line): one run, a few, the most runs.
        for (lines, pad) in [(0, 0), (1, 0), (7, 3), (3000, 40), (20_000, 100)] {
            let mut text = String::new();
            for i in 0..lines {
                match i % 7 {
                    3 => text.push('\n'),                                    // blank
                    4 => text.push_str("  \t\n"),                            // whitespace only
                    5 => text.push_str("{\"n\": \n"),                        // broken JSON
                    6 => text.push_str(&format!("{{\"n\": \"x{i}\"}}\r\n")), // schema violation, CRLF
                    _ => {
                        text.push_str(&format!("{{\"n\": {i}, \"p\": \"{}\"}}\n", "x".repeat(pad)))
                    }
                }
            }
            let base = 1000u64;
            let unsplit = || Chunk {
                shard: Arc::from("s"),
                buf: text.clone().into_bytes(),
                unsplit: Some(base),
                next: Position::new(u128::from(base) + text.len() as u128, 0),
                consumed: text.len() as u64,
                ..Default::default()
            };
            let mut cut = unsplit();
            cut.split_lines();
            let want = transformed(&t, cut);
            let got = transformed(&t, unsplit());
            assert_eq!(got, want, "{lines} lines");
            let good = (0..lines)
                .filter(|i| ![3, 4, 5, 6].contains(&(i % 7)))
                .count();
            let bad = (0..lines).filter(|i| [5, 6].contains(&(i % 7))).count();
            assert_eq!(got.len(), good + bad, "{lines} lines");
            if lines > 0 {
                assert_eq!(got[0], (Position::new(1000, 0), "Int(0)".to_string()));
            }
        }
    }
}
