//! NDJSON from a file or stdin. A record's sequence number is the byte
//! offset of its line, so a file's checkpoint is "resume at byte N".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::mapped::{MappedRange, Mapping};
use super::{now_ms, Chunk, Records, Recycler, Source, SourceContext};
use crate::checkpoint::Position;
use crate::error::{Error, Result};

/// The single shard of a file source.
pub const FILE_SHARD: &str = "file";

/// Room for a carried-over partial line beyond the read block.
const CARRY_SLACK: usize = 64 * 1024;

/// Bytes read per chunk.
const READ_BYTES: usize = 1024 * 1024;

/// The read block for a memory cap: large blocks amortise the per-chunk
/// work (a parallel transform, a pass over the buffers) over more records;
/// the pipeline holds about six chunks at once, so they stay a small share
/// of the cap.
pub fn block_for_cap(memory_cap: usize) -> usize {
    (memory_cap / 128).clamp(256 << 10, 4 << 20)
}

pub struct FileSource {
    /// None reads stdin.
    path: Option<PathBuf>,
    id: String,
    name: String,
    /// Lines longer than this are cut here and passed on (the transform
    /// rejects them as too large), so one huge line cannot exhaust memory.
    max_line: usize,
    /// Bytes read per chunk.
    block: usize,
    /// Map a file rather than read it (see [`super::mapped`]); reading is
    /// the fallback when mapping fails, and tested on its own.
    map: bool,
}

impl FileSource {
    /// `path` "-" is stdin. Fails if the file cannot be opened.
    pub fn open(path: &str, name: Option<String>, max_record_bytes: usize) -> Result<FileSource> {
        let max_line = max_record_bytes.saturating_add(1024);
        if path == "-" {
            return Ok(FileSource {
                path: None,
                id: "stdin".into(),
                name: name.unwrap_or_else(|| "stdin".into()),
                max_line,
                block: READ_BYTES,
                map: false,
            });
        }
        let p = PathBuf::from(path);
        let abs = p.canonicalize().map_err(|source| Error::Input {
            path: path.into(),
            source,
        })?;
        if !abs.is_file() {
            return Err(Error::Input {
                path: path.into(),
                source: std::io::Error::other("not a regular file"),
            });
        }
        let default_name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_owned());
        Ok(FileSource {
            id: format!("file:{}", abs.display()),
            path: Some(abs),
            name: name.unwrap_or(default_name),
            max_line,
            block: READ_BYTES,
            map: true,
        })
    }

    /// Read `bytes` per chunk (see [`block_for_cap`]).
    pub fn with_block(mut self, bytes: usize) -> FileSource {
        self.block = bytes.max(1);
        self
    }
}

impl Source for FileSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn resumable(&self) -> bool {
        self.path.is_some()
    }

    fn size_hint(&self) -> Option<u64> {
        self.path
            .as_ref()
            .and_then(|p| p.metadata().ok())
            .map(|m| m.len())
    }

    fn run(self: Box<Self>, ctx: &SourceContext, tx: Sender<Result<Chunk>>) -> Result<()> {
        let (resume, stop) = (&ctx.resume, &ctx.stop);
        // A file has no arrival times of its own: use the first start on
        // it (checkpointed), so a record read again after a crash gets the
        // same one (and the same partition, for tables without event time).
        let arrival_ms = resume.started_ms.unwrap_or_else(now_ms);
        let display = self
            .path
            .as_ref()
            .map_or("stdin".to_string(), |p| p.display().to_string());
        let io_err = |source: std::io::Error| Error::Input {
            path: display.clone(),
            source,
        };
        let mut start = 0u64;
        let mut mapped = None;
        let mut input: Box<dyn Read + Send> = match &self.path {
            None => Box::new(std::io::stdin()),
            Some(p) => {
                let mut f = File::open(p).map_err(io_err)?;
                let len = f.metadata().map_err(io_err)?.len();
                if let Some(pos) = resume.shards.get(FILE_SHARD) {
                    start = u64::try_from(pos.seq).unwrap_or(u64::MAX);
                    if start > len {
                        return Err(io_err(std::io::Error::other(format!(
                            "the checkpoint is at byte {start} but the file has {len} bytes: it was replaced or truncated; remove the checkpoint to start over"
                        ))));
                    }
                    f.seek(SeekFrom::Start(start)).map_err(io_err)?;
                }
                // What the file holds now is read; lines added later are
                // the next run's (the checkpoint says where they start).
                mapped = self
                    .map
                    .then(|| Mapping::map(&f, len))
                    .flatten()
                    .map(Arc::new);
                Box::new(f)
            }
        };
        let shard: Arc<str> = Arc::from(FILE_SHARD);
        let mut lines = Lines {
            max_line: self.max_line,
            skipping: false,
        };
        // The chunk of `consumed` bytes at `offset` and its records (None:
        // whole lines, split where they are transformed).
        let chunk =
            |offset: u64, consumed: usize, records: Option<_>, buf, mapped, recycle| Chunk {
                shard: shard.clone(),
                arrival_ms,
                buf,
                mapped,
                unsplit: records.is_none().then_some(offset),
                records: records.unwrap_or_default(),
                next: Position::new((offset + consumed as u64) as u128, 0),
                consumed: consumed as u64,
                recycle,
                ..Default::default()
            };
        if let Some(map) = mapped {
            // Windows of the mapping, each starting with the line the last
            // one left unfinished: the same blocks as reading would make,
            // without the copies.
            let data = map.bytes();
            let mut offset = start as usize;
            let mut carried = 0;
            while offset < data.len() && !stop.load(Ordering::Relaxed) {
                let end = (offset + carried + self.block).min(data.len());
                map.will_need(end, end + self.block);
                let eof = end == data.len();
                let (records, consumed) = lines.cut(&data[offset..end], offset as u64, eof);
                carried = end - offset - consumed;
                if consumed > 0 {
                    let range = MappedRange::new(map.clone(), offset, offset + consumed);
                    let c = chunk(
                        offset as u64,
                        consumed,
                        records,
                        Vec::new(),
                        Some(range),
                        None,
                    );
                    if tx.send(Ok(c)).is_err() {
                        break; // the pipeline is gone
                    }
                }
                offset += consumed;
            }
            return Ok(());
        }
        let mut carry: Vec<u8> = Vec::new();
        // Offset of carry[0] in the input.
        let mut offset = start;
        let mut eof = false;
        // Idle blocks kept: about as many as the pipeline holds at once
        // (read-ahead, transform stage, routing loop).
        let recycler = Recycler::new(8);
        while !eof && !stop.load(Ordering::Relaxed) {
            let mut buf = recycler.take();
            buf.extend_from_slice(&carry);
            let old = buf.len();
            if self.path.is_some() {
                // A file: fill the block straight into spare capacity (no
                // zero-filling first), or stop at end of input.
                // Slack for the carried line, so a recycled block is not
                // reallocated (copied) when the carry grows a little.
                buf.reserve_exact(self.block + CARRY_SLACK);
                let n = (&mut input)
                    .take(self.block as u64)
                    .read_to_end(&mut buf)
                    .map_err(io_err)?;
                eof = n < self.block;
            } else {
                // stdin: hand over what arrived rather than wait for a full block.
                buf.resize(old + self.block, 0);
                let mut filled = old;
                while filled < buf.len() {
                    match input.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            filled += n;
                            if buf[old..filled].contains(&b'\n') {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_err(e)),
                    }
                }
                buf.truncate(filled);
            }
            let (records, consumed) = lines.cut(&buf, offset, eof);
            // The unfinished line moves to the next block; records point into this one.
            carry.clear();
            carry.extend_from_slice(&buf[consumed..]);
            buf.truncate(consumed);
            let c = chunk(offset, consumed, records, buf, None, Some(recycler.clone()));
            offset += consumed as u64;
            if c.consumed > 0 && tx.send(Ok(c)).is_err() {
                break; // the pipeline is gone
            }
        }
        Ok(())
    }
}

/// Cuts blocks into lines. A line longer than `max_line` is passed on cut
/// there, and the rest of it skipped up to its newline, across blocks.
struct Lines {
    max_line: usize,
    /// Skipping the rest of an over-long line.
    skipping: bool,
}

impl Lines {
    /// What [`Lines::split`] gives, except that when `buf[..consumed]` is
    /// whole lines, each ending in a newline, they are left unsplit (None):
    /// the transform splits them as it parses them (see
    /// [`Chunk::unsplit`]). Finding the last newline touches only the
    /// block's end.
    fn cut(&mut self, buf: &[u8], offset: u64, eof: bool) -> (Option<Records>, usize) {
        if !self.skipping {
            if let Some(last) = memchr::memrchr(b'\n', buf) {
                // What `split` would leave for the next block, or nothing.
                let tail = buf.len() - last - 1;
                if tail == 0 || (!eof && tail <= self.max_line) {
                    return (None, last + 1);
                }
            }
        }
        let (records, consumed) = self.split(buf, offset, eof);
        (Some(records), consumed)
    }

    /// The records in `buf` (the line the last block left unfinished, then
    /// the next bytes of input, `offset` being where `buf` starts in it) as
    /// ranges into `buf` with their positions, and how many bytes of `buf`
    /// they consume: the rest is an unfinished line for the next block.
    /// `eof`: no input follows `buf`.
    fn split(&mut self, buf: &[u8], offset: u64, eof: bool) -> (Records, usize) {
        let at = |line_start: usize| Position::new((offset + line_start as u64) as u128, 0);
        let mut records = Vec::with_capacity(buf.len() / 512 + 1);
        let mut line_start = 0usize;
        if self.skipping {
            // The rest of an over-long line, up to its newline.
            if let Some(nl) = memchr::memchr(b'\n', buf) {
                self.skipping = false;
                line_start = nl + 1;
            } else {
                line_start = buf.len();
            }
        }
        if let Some(last) = memchr::memrchr(b'\n', &buf[line_start..]) {
            let end = line_start + last + 1;
            for_each_line(buf, line_start, end, |a, b, start| {
                records.push((a, b, at(start)))
            });
            line_start = end;
        }
        let tail = buf.len() - line_start;
        if eof && tail > 0 && !self.skipping {
            // last line without a trailing newline
            if let Some((a, b)) = record_range(buf, line_start, buf.len()) {
                records.push((a, b, at(line_start)));
            }
            line_start = buf.len();
        } else if tail > self.max_line && !self.skipping {
            // An over-long line: pass on its head, drop the rest up to its newline.
            records.push((line_start, line_start + self.max_line, at(line_start)));
            self.skipping = true;
            line_start = buf.len();
        } else if self.skipping {
            line_start = buf.len();
        }
        (records, line_start)
    }
}

/// Call `f(start, end, line_start)` for each record among the lines of
/// `buf[from..to]`, which starts a line and ends with a newline (or at the
/// end of input): blank lines are skipped, a CR before the newline is
/// dropped.
pub fn for_each_line(buf: &[u8], from: usize, to: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut start = from;
    while start < to {
        let end = memchr::memchr(b'\n', &buf[start..to]).map_or(to, |n| start + n);
        if let Some((a, b)) = record_range(buf, start, end) {
            f(a, b, start);
        }
        start = end + 1;
    }
}

fn record_range(buf: &[u8], a: usize, mut b: usize) -> Option<(usize, usize)> {
    if b > a && buf[b - 1] == b'\r' {
        b -= 1;
    }
    if buf[a..b].iter().all(|c| c.is_ascii_whitespace()) {
        return None;
    }
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointState;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn block_follows_the_cap_within_bounds() {
        const MIB: usize = 1 << 20;
        for (cap, want) in [
            (MIB, 256 << 10),
            (32 * MIB, 256 << 10),
            (256 * MIB, 2 * MIB),
            (512 * MIB, 4 * MIB),
            (8192 * MIB, 4 * MIB),
        ] {
            assert_eq!(block_for_cap(cap), want, "cap {cap}");
        }
    }

    /// Every record of a file with `content`, with its offset, read in
    /// `block`s both ways (mapped, and read); the two must agree.
    fn read_all(
        content: &[u8],
        resume_at: Option<u128>,
        max: usize,
        block: usize,
    ) -> Vec<(String, u128)> {
        let mapped = read_all_with(content, resume_at, max, block, true);
        let read = read_all_with(content, resume_at, max, block, false);
        assert_eq!(mapped, read, "mapped and read agree");
        mapped
    }

    fn read_all_with(
        content: &[u8],
        resume_at: Option<u128>,
        max: usize,
        block: usize,
        map: bool,
    ) -> Vec<(String, u128)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.ndjson");
        std::fs::write(&p, content).unwrap();
        let mut src = FileSource::open(p.to_str().unwrap(), None, max).unwrap();
        src.map = map;
        let src = src.with_block(block);
        let mut st = CheckpointState::default();
        if let Some(at) = resume_at {
            st.shards.insert(FILE_SHARD.into(), Position::new(at, 0));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        Box::new(src)
            .run(
                &SourceContext::new(st, Arc::new(AtomicBool::new(false))),
                tx,
            )
            .unwrap();
        let mut out = vec![];
        let mut last_next = 0;
        for c in rx {
            let mut c = c.unwrap();
            c.split_lines();
            for i in 0..c.records.len() {
                out.push((
                    String::from_utf8_lossy(c.record(i)).into_owned(),
                    c.records[i].2.seq,
                ));
            }
            last_next = c.next.seq;
        }
        if !content.is_empty() && resume_at.is_none() {
            assert_eq!(last_next, content.len() as u128, "next position is the end");
        }
        out
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn lines_and_offsets() {
        let cases: Vec<(&[u8], Option<u128>, Vec<(&str, u128)>)> = vec![
            (b"a\nbb\nccc\n", None, vec![("a", 0), ("bb", 2), ("ccc", 5)]),
            // no trailing newline: the last line still counts
            (b"a\nbb", None, vec![("a", 0), ("bb", 2)]),
            // blank lines and CRLF
            (b"a\r\n\n  \nb\n", None, vec![("a", 0), ("b", 7)]),
            (b"", None, vec![]),
            // resume at a checkpointed offset
            (b"a\nbb\nccc\n", Some(5), vec![("ccc", 5)]),
        ];
        for (content, resume, want) in cases {
            let want: Vec<(String, u128)> =
                want.into_iter().map(|(s, o)| (s.to_string(), o)).collect();
            // Blocks that cut lines, and one that holds them all.
            for block in [1, 3, READ_BYTES] {
                let got = read_all(content, resume, 1 << 20, block);
                assert_eq!(
                    got,
                    want,
                    "{:?} block {block}",
                    String::from_utf8_lossy(content)
                );
            }
        }
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(READ_BYTES * 2 + 10);
        let content = format!("a\n{long}\nb\n");
        let got = read_all(content.as_bytes(), None, 100, READ_BYTES);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0.len(), 100 + 1024);
        assert_eq!(got[2], ("b".to_string(), (2 + long.len() + 1) as u128));
    }

    #[test]
    fn checkpoint_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.ndjson");
        std::fs::write(&p, b"a\n").unwrap();
        let src = FileSource::open(p.to_str().unwrap(), None, 10).unwrap();
        let mut st = CheckpointState::default();
        st.shards.insert(FILE_SHARD.into(), Position::new(99, 0));
        let (tx, _rx) = crossbeam_channel::unbounded();
        let e = Box::new(src)
            .run(
                &SourceContext::new(st, Arc::new(AtomicBool::new(false))),
                tx,
            )
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
