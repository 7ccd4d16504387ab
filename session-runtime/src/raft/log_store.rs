//! A durable Raft log store for `openraft` 0.9 (`storage-v2`) on plain files.
//!
//! Layout of the directory handed to [`LogStore::open`]:
//!
//! - `vote`: the current vote, replaced atomically (write `vote.tmp`, fsync, rename, fsync dir).
//! - `purged`: the last purged log id, written the same way before any segment is deleted.
//! - `committed`: the last committed log id, a hint overwritten in place without fsync.
//! - `log-{first_index:020}.seg`: log segments. Each record is
//!   `[u32 LE payload length][u32 LE crc32 of payload][payload]`, the payload being one encoded
//!   `C::Entry`. Segment `N` only holds indexes in `[N, name of the next segment)`.
//!
//! Every non-purged entry is also kept in memory, so reads never touch the disk.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Debug};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig};
use openraft::{StorageError, StorageIOError, Vote};
use serde::{de::DeserializeOwned, Serialize};

/// Encodes a value for the disk, with the crate's one codec.
fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    Ok(crate::codec::encode(value))
}

/// Decodes a value written by [`encode`]; trailing bytes are an error.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    crate::codec::decode(bytes).map_err(|e| invalid(format!("cannot decode: {e}")))
}

/// Size after which the active segment is closed and a new one started. Big enough that
/// rotation (an fsync and a directory fsync) is rare, small enough that purging frees disk often.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

const HEADER: usize = 8;
const VOTE: &str = "vote";
const PURGED: &str = "purged";
const COMMITTED: &str = "committed";

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// When appended entries are forced to stable storage.
///
/// The vote and the purged id are always fsynced whatever the policy: losing a vote can elect
/// two leaders in one term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `sync_data` before an append is reported done: nothing acknowledged is lost on power loss.
    Always,
    /// Appends are done once in the OS page cache; a background thread fsyncs about once a
    /// second. A power loss may lose the last second; a process crash loses nothing.
    EverySec,
    /// Never fsync appends; the OS writes back when it likes. Survives process crashes only.
    No,
}

/// Error of parsing an [`Fsync`] policy name, so a bad config value is reported by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFsyncError(pub String);

impl fmt::Display for ParseFsyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid fsync policy {:?}: expected one of \"always\", \"everysec\", \"no\"",
            self.0
        )
    }
}

impl std::error::Error for ParseFsyncError {}

impl FromStr for Fsync {
    type Err = ParseFsyncError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            _ => Err(ParseFsyncError(s.to_string())),
        }
    }
}

/// A snapshot of the store's size, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// Index of the first entry kept (not purged), if any.
    pub first_index: Option<u64>,
    /// Index of the last entry, if any.
    pub last_index: Option<u64>,
    /// Number of entries kept in memory.
    pub entries: u64,
    /// Bytes in segment files, purged-but-not-yet-deleted records included.
    pub bytes_on_disk: u64,
    /// Number of segment files.
    pub segments: usize,
}

/// State shared with the `EverySec` flusher thread; not generic so the thread needs no bounds.
#[derive(Default)]
struct SyncState {
    active: Option<Arc<File>>,
    dirty: bool,
    /// Set on the first write or fsync failure: after it the page cache state is unknown, so
    /// every later write fails rather than pretend.
    failed: Option<String>,
}

fn flush_if_dirty(sync: &Mutex<SyncState>) {
    let file = match sync.lock() {
        Ok(mut s) if s.dirty && s.failed.is_none() => {
            s.dirty = false;
            s.active.clone()
        }
        _ => return,
    };
    if let Some(file) = file {
        if let Err(e) = file.sync_data() {
            tracing::error!("raft log: background fsync failed: {e}");
            if let Ok(mut s) = sync.lock() {
                s.failed = Some(format!("background fsync failed: {e}"));
            }
        }
    }
}

/// One `Always` append waiting for its fsync: the file it wrote to, and what to tell openraft.
type SyncJob = (Arc<File>, Box<dyn FnOnce(io::Result<()>) + Send>);

/// Starts the `Always` thread: it takes every append waiting for an fsync, runs one `sync_data`
/// per file for all of them (group commit), then reports them done, in order. Appends go on
/// while an fsync runs, so many writers share each fsync instead of queueing one each. It stops
/// when the store (holding the sender) is dropped, after the jobs already queued.
fn spawn_group_sync(sync: Arc<Mutex<SyncState>>) -> io::Result<mpsc::Sender<SyncJob>> {
    let (tx, rx) = mpsc::channel::<SyncJob>();
    std::thread::Builder::new()
        .name("raft-log-group-fsync".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                let mut result = Ok(());
                let mut synced: Vec<*const File> = Vec::new();
                for (file, _) in &batch {
                    let key = Arc::as_ptr(file);
                    if result.is_ok() && !synced.contains(&key) {
                        synced.push(key);
                        result = file.sync_data();
                    }
                }
                if let Err(e) = &result {
                    tracing::error!("raft log: fsync failed: {e}");
                    if let Ok(mut s) = sync.lock() {
                        s.failed = Some(format!("fsync failed: {e}"));
                    }
                }
                for (_, done) in batch {
                    done(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        })?;
    Ok(tx)
}

/// Starts the `EverySec` thread; it stops when the returned sender is dropped (with the store).
fn spawn_flusher(sync: Arc<Mutex<SyncState>>) -> io::Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("raft-log-fsync".into())
        .spawn(move || {
            // One pass a second, for as long as the store lives: the loop ends when the sender drops.
            loop {
                let stop = !matches!(
                    rx.recv_timeout(Duration::from_secs(1)),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                flush_if_dirty(&sync);
                if stop {
                    break;
                }
            }
        })?;
    Ok(tx)
}

/// An fsync an append still waits for: the file, and the group-commit queue to run it on.
type PendingSync = (Arc<File>, mpsc::Sender<SyncJob>);

struct Slot<E> {
    entry: E,
    segment: u64,
    offset: u64,
}

struct Inner<C: RaftTypeConfig> {
    dir: PathBuf,
    fsync: Fsync,
    segment_bytes: u64,
    vote: Option<Vote<C::NodeId>>,
    purged: Option<LogId<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    committed_file: Option<File>,
    /// Contiguous: `log[i]` has index `first + i`.
    log: VecDeque<Slot<C::Entry>>,
    /// Segment name (first index) -> bytes in the file.
    segments: BTreeMap<u64, u64>,
    /// Append handle of the last segment.
    active: Option<Arc<File>>,
    sync: Arc<Mutex<SyncState>>,
    _stop_flusher: Option<mpsc::Sender<()>>,
    /// `Always`: the group-commit thread's queue.
    group_sync: Option<mpsc::Sender<SyncJob>>,
}

impl<C: RaftTypeConfig> Drop for Inner<C> {
    fn drop(&mut self) {
        // EverySec: do not leave up to a second of appends to the OS when the store closes.
        flush_if_dirty(&self.sync);
    }
}

fn seg_path(dir: &Path, name: u64) -> PathBuf {
    dir.join(format!("log-{name:020}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn push_record(buf: &mut Vec<u8>, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record larger than 4 GiB"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

enum Parsed<'a> {
    Record(&'a [u8]),
    Torn(&'static str),
}

/// Parses the record at `pos` (< data.len()).
fn parse_record(data: &[u8], pos: usize) -> Parsed<'_> {
    let rest = data.get(pos..).unwrap_or_default();
    let (Some(len), Some(crc)) = (rest.get(0..4), rest.get(4..8)) else {
        return Parsed::Torn("short header");
    };
    let mut b = [0u8; 4];
    b.copy_from_slice(len);
    let len = u32::from_le_bytes(b) as usize;
    b.copy_from_slice(crc);
    let crc = u32::from_le_bytes(b);
    if len == 0 {
        // No entry encodes to nothing; this is a zero-filled tail, not a record.
        return Parsed::Torn("zero length");
    }
    let Some(payload) = rest.get(HEADER..HEADER.saturating_add(len)) else {
        return Parsed::Torn("short payload");
    };
    if crc32fast::hash(payload) != crc {
        return Parsed::Torn("crc mismatch");
    }
    Parsed::Record(payload)
}

/// Reads a one-record file; `Ok(None)` if absent.
fn read_meta<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match parse_record(&data, 0) {
        Parsed::Record(p) => decode(p)
            .map(Some)
            .map_err(|e| invalid(format!("{}: offset 0: {e}", path.display()))),
        Parsed::Torn(why) => Err(invalid(format!("{}: offset 0: {why}", path.display()))),
    }
}

/// Replaces `dir/name` atomically and durably: tmp file, fsync, rename, fsync dir.
fn write_durable(dir: &Path, name: &str, payload: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    push_record(&mut buf, payload)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut names = Vec::new();
    for de in fs::read_dir(dir)? {
        let de = de?;
        let file_name = de.file_name();
        let Some(s) = file_name.to_str() else {
            continue;
        };
        let Some(digits) = s.strip_prefix("log-").and_then(|s| s.strip_suffix(".seg")) else {
            continue;
        };
        match digits.parse::<u64>() {
            Ok(n) if digits.len() == 20 => names.push(n),
            _ => tracing::warn!("raft log: ignoring unexpected file {}", de.path().display()),
        }
    }
    names.sort_unstable();
    Ok(names)
}

type Recovered<E> = (VecDeque<Slot<E>>, BTreeMap<u64, u64>);

/// Loads every segment, verifying crc, order and contiguity. Only the tail may be torn.
fn recover_segments<C>(
    dir: &Path,
    purged: Option<&LogId<C::NodeId>>,
) -> io::Result<Recovered<C::Entry>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let names = list_segments(dir)?;
    let mut sizes = Vec::with_capacity(names.len());
    for &name in &names {
        sizes.push(fs::metadata(seg_path(dir, name))?.len());
    }
    // Empty segments after the last non-empty one hold nothing: the torn tail is before them.
    let tail = sizes.iter().rposition(|&s| s > 0).unwrap_or(0);
    let purged_index = purged.map(|p| p.index);

    let mut log: VecDeque<Slot<C::Entry>> = VecDeque::new();
    let mut segments = BTreeMap::new();
    let mut prev: Option<u64> = None;
    let mut removed_any = false;
    for (i, &name) in names.iter().enumerate() {
        let path = seg_path(dir, name);
        let data = fs::read(&path)?;
        let next_name = names.get(i + 1).copied();
        let at =
            |pos: usize, msg: String| invalid(format!("{}: offset {pos}: {msg}", path.display()));
        let mut pos = 0usize;
        // Bounded: each pass consumes a whole record (>= 9 bytes) or leaves the loop.
        while pos < data.len() {
            let payload = match parse_record(&data, pos) {
                Parsed::Record(p) => p,
                Parsed::Torn(why) if i >= tail => {
                    tracing::warn!(
                        "raft log: {}: {why} at offset {pos}, dropping {} trailing bytes of a torn write",
                        path.display(),
                        data.len() - pos
                    );
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(pos as u64)?;
                    f.sync_all()?;
                    break;
                }
                Parsed::Torn(why) => {
                    return Err(at(
                        pos,
                        format!("{why} in a segment that is not the last; refusing to drop data"),
                    ));
                }
            };
            let entry: C::Entry = decode(payload).map_err(|e| at(pos, e.to_string()))?;
            let index = entry.get_log_id().index;
            if index < name || next_name.is_some_and(|n| index >= n) {
                return Err(at(
                    pos,
                    format!("index {index} does not belong in this segment"),
                ));
            }
            if prev.is_some_and(|p| index <= p) {
                return Err(at(
                    pos,
                    format!("non-increasing index {index} after {prev:?}"),
                ));
            }
            prev = Some(index);
            if purged_index.is_none_or(|p| index > p) {
                let expected = log
                    .back()
                    .map(|s| s.entry.get_log_id().index + 1)
                    .or(purged_index.map(|p| p + 1));
                if expected.is_some_and(|x| x != index) {
                    return Err(at(
                        pos,
                        format!("gap in log: expected index {expected:?}, found {index}"),
                    ));
                }
                log.push_back(Slot {
                    entry,
                    segment: name,
                    offset: pos as u64,
                });
            }
            pos += HEADER + payload.len();
        }
        if pos == 0 {
            // Nothing in it (possibly after cutting a torn tail): the next append makes a new one.
            fs::remove_file(&path)?;
            removed_any = true;
        } else {
            segments.insert(name, pos as u64);
        }
    }
    if removed_any {
        sync_dir(dir)?;
    }
    Ok((log, segments))
}

impl<C> Inner<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    fn check_ok(&self) -> io::Result<()> {
        match self.sync.lock() {
            Ok(s) => match &s.failed {
                None => Ok(()),
                Some(why) => Err(io::Error::other(format!(
                    "raft log store failed earlier: {why}"
                ))),
            },
            Err(_) => Err(io::Error::other("raft log store sync mutex poisoned")),
        }
    }

    fn fail<T>(&self, e: io::Error) -> io::Result<T> {
        if let Ok(mut s) = self.sync.lock() {
            s.failed.get_or_insert_with(|| e.to_string());
        }
        Err(e)
    }

    fn set_active(&mut self, file: Option<Arc<File>>) {
        self.active = file.clone();
        if let Ok(mut s) = self.sync.lock() {
            s.active = file;
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.log.front().map(|s| s.entry.get_log_id().index)
    }

    fn last_log_id(&self) -> Option<LogId<C::NodeId>> {
        self.log
            .back()
            .map(|s| s.entry.get_log_id().clone())
            .or_else(|| self.purged.clone())
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<C::Entry> {
        let Some(first) = self.first_index() else {
            return Vec::new();
        };
        let end_all = first + self.log.len() as u64;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(first);
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        }
        .min(end_all);
        if start >= end {
            return Vec::new();
        }
        self.log
            .range((start - first) as usize..(end - first) as usize)
            .map(|s| s.entry.clone())
            .collect()
    }

    fn open_active(&mut self) -> io::Result<()> {
        let file = match self.segments.last_key_value() {
            Some((&name, _)) => Some(Arc::new(
                OpenOptions::new()
                    .append(true)
                    .open(seg_path(&self.dir, name))?,
            )),
            None => None,
        };
        self.set_active(file);
        Ok(())
    }

    fn create_segment(&mut self, name: u64) -> io::Result<(u64, u64)> {
        if self
            .segments
            .last_key_value()
            .is_some_and(|(&last, _)| last >= name)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("new segment {name} would not sort after existing ones"),
            ));
        }
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(seg_path(&self.dir, name))?;
        if self.fsync != Fsync::No {
            sync_dir(&self.dir)?;
        }
        self.segments.insert(name, 0);
        self.set_active(Some(Arc::new(file)));
        Ok((name, 0))
    }

    /// Returns (segment name, its size) to append a batch starting at `first`, rotating if full.
    fn segment_for_append(&mut self, first: u64) -> io::Result<(u64, u64)> {
        if let Some((&name, &size)) = self.segments.last_key_value() {
            if size == 0 && name != first {
                // An empty segment left by truncate: rename it by recreating, so names stay exact.
                self.set_active(None);
                self.segments.remove(&name);
                fs::remove_file(seg_path(&self.dir, name))?;
            } else if size > 0 && size >= self.segment_bytes {
                if self.fsync != Fsync::No {
                    if let Some(f) = &self.active {
                        f.sync_data()?;
                    }
                }
                return self.create_segment(first);
            } else {
                if self.active.is_none() {
                    self.open_active()?;
                }
                return Ok((name, size));
            }
        }
        self.create_segment(first)
    }

    /// Writes `entries` to the active segment (they reach the OS before this returns). Under
    /// `Always`, returns the fsync still to run before they may be reported durable.
    fn append(&mut self, mut entries: Vec<C::Entry>) -> io::Result<Option<PendingSync>> {
        self.check_ok()?;
        // Entries at or below the purged id are already covered by the state machine: drop them
        // as recovery would (openraft's own test suite appends such entries).
        if let Some(p) = &self.purged {
            entries.retain(|e| e.get_log_id().index > p.index);
        }
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            return Ok(None);
        };
        let mut expected = match self.log.back() {
            Some(s) => Some(s.entry.get_log_id().index + 1),
            None => self.purged.as_ref().map(|p| p.index + 1),
        };
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in &entries {
            let index = e.get_log_id().index;
            if expected.is_some_and(|x| x != index) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("append of index {index} would leave a hole or overlap: expected {expected:?}"),
                ));
            }
            expected = Some(index + 1);
            offsets.push(buf.len() as u64);
            push_record(&mut buf, &encode(e)?)?;
        }
        let (segment, base) = match self.segment_for_append(first) {
            Ok(x) => x,
            Err(e) => return self.fail(e),
        };
        let Some(file) = self.active.clone() else {
            return self.fail(io::Error::other("no active segment after rotation"));
        };
        if let Err(e) = (&*file).write_all(&buf) {
            // Do not leave a torn record in the middle of the log for later appends to follow.
            let _ = file.set_len(base);
            return self.fail(e);
        }
        self.segments.insert(segment, base + buf.len() as u64);
        for (entry, off) in entries.into_iter().zip(offsets) {
            self.log.push_back(Slot {
                entry,
                segment,
                offset: base + off,
            });
        }
        match self.fsync {
            Fsync::Always => {
                if let Some(queue) = &self.group_sync {
                    return Ok(Some((file, queue.clone())));
                }
                if let Err(e) = file.sync_data() {
                    return self.fail(e);
                }
            }
            Fsync::EverySec => {
                if let Ok(mut s) = self.sync.lock() {
                    s.dirty = true;
                }
            }
            Fsync::No => {}
        }
        Ok(None)
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        self.check_ok()?;
        if let Some(p) = &self.purged {
            if index <= p.index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot truncate at {index}: at or below the purged id {p}"),
                ));
            }
        }
        let (Some(first), Some(last)) = (
            self.first_index(),
            self.log.back().map(|s| s.entry.get_log_id().index),
        ) else {
            return Ok(());
        };
        if index > last {
            return Ok(());
        }
        let pos = index.saturating_sub(first) as usize;
        let Some((segment, offset)) = self.log.get(pos).map(|s| (s.segment, s.offset)) else {
            return Ok(());
        };
        match self.truncate_files(segment, offset) {
            Ok(()) => {
                self.log.truncate(pos);
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn truncate_files(&mut self, segment: u64, offset: u64) -> io::Result<()> {
        self.set_active(None);
        let later: Vec<u64> = self
            .segments
            .range(segment + 1..)
            .map(|(&k, _)| k)
            .collect();
        let mut removed = false;
        // Newest first, so a crash in between leaves a prefix of the log, never a hole.
        for name in later.into_iter().rev() {
            fs::remove_file(seg_path(&self.dir, name))?;
            self.segments.remove(&name);
            removed = true;
        }
        let path = seg_path(&self.dir, segment);
        if offset == 0 && self.segments.len() > 1 {
            fs::remove_file(&path)?;
            self.segments.remove(&segment);
            removed = true;
        } else {
            let f = OpenOptions::new().append(true).open(&path)?;
            f.set_len(offset)?;
            self.segments.insert(segment, offset);
            // Not only under Always: truncation is rare, and a cut undone by a crash under the
            // appends that replace it would fail recovery.
            if self.fsync != Fsync::No {
                f.sync_data()?;
            }
        }
        if removed && self.fsync != Fsync::No {
            sync_dir(&self.dir)?;
        }
        self.open_active()
    }

    fn purge(&mut self, log_id: LogId<C::NodeId>) -> io::Result<()> {
        self.check_ok()?;
        if self
            .purged
            .as_ref()
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        let index = log_id.index;
        if let Err(e) = write_durable(&self.dir, PURGED, &encode(&log_id)?) {
            return self.fail(e);
        }
        self.purged = Some(log_id);
        while self.first_index().is_some_and(|i| i <= index) {
            self.log.pop_front();
        }
        // Segment N holds indexes < the next segment's name, so it is all purged when
        // next - 1 <= index. The last segment is never deleted.
        let names: Vec<u64> = self.segments.keys().copied().collect();
        for w in names.windows(2) {
            if w[1].saturating_sub(1) > index {
                break;
            }
            if let Err(e) = fs::remove_file(seg_path(&self.dir, w[0])) {
                return self.fail(e);
            }
            self.segments.remove(&w[0]);
        }
        Ok(())
    }

    fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> io::Result<()> {
        write_durable(&self.dir, VOTE, &encode(vote)?)?;
        self.vote = Some(vote.clone());
        Ok(())
    }

    /// A hint: overwritten in place without fsync; a torn one reads back as `None`.
    fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> io::Result<()> {
        let mut buf = Vec::new();
        push_record(&mut buf, &encode(&committed)?)?;
        if self.committed_file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join(COMMITTED))?;
            self.committed_file = Some(f);
        }
        if let Some(mut f) = self.committed_file.as_ref() {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&buf)?;
        }
        self.committed = committed;
        Ok(())
    }

    /// Reads the committed hint, dropping it (safe: openraft then starts from the state machine)
    /// if torn or pointing past the recovered log.
    fn load_committed(&self) -> Option<LogId<C::NodeId>> {
        let path = self.dir.join(COMMITTED);
        let committed: Option<LogId<C::NodeId>> = match read_meta::<Option<LogId<C::NodeId>>>(&path)
        {
            Ok(c) => c.flatten(),
            Err(e) => {
                tracing::warn!("raft log: ignoring committed hint: {e}");
                return None;
            }
        };
        let c = committed?;
        if self.purged.as_ref().is_some_and(|p| c.index <= p.index) {
            return Some(c);
        }
        let ok = self
            .first_index()
            .and_then(|first| c.index.checked_sub(first))
            .and_then(|pos| self.log.get(pos as usize))
            .is_some_and(|s| *s.entry.get_log_id() == c);
        if !ok {
            tracing::warn!("raft log: ignoring committed hint {c}: not in the recovered log");
            return None;
        }
        Some(c)
    }
}

/// A durable openraft log store on plain files; cloning is cheap and shares the state, so the
/// same type serves as its own [`RaftLogStorage::LogReader`].
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Mutex<Inner<C>>>,
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Opens (creating if missing) the store in `dir` and recovers it: a torn tail of the last
    /// segment is cut off with a warning; any other damage is an `InvalidData` error.
    pub fn open(dir: &Path, fsync: Fsync) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        for tmp in [format!("{VOTE}.tmp"), format!("{PURGED}.tmp")] {
            match fs::remove_file(dir.join(tmp)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let vote: Option<Vote<C::NodeId>> = read_meta(&dir.join(VOTE))?;
        let purged: Option<LogId<C::NodeId>> = read_meta(&dir.join(PURGED))?;
        let (log, segments) = recover_segments::<C>(dir, purged.as_ref())?;
        let sync = Arc::new(Mutex::new(SyncState::default()));
        let stop = match fsync {
            Fsync::EverySec => Some(spawn_flusher(sync.clone())?),
            _ => None,
        };
        let group_sync = match fsync {
            Fsync::Always => Some(spawn_group_sync(sync.clone())?),
            _ => None,
        };
        let mut inner = Inner::<C> {
            dir: dir.to_path_buf(),
            fsync,
            segment_bytes: SEGMENT_BYTES,
            vote,
            purged,
            committed: None,
            committed_file: None,
            log,
            segments,
            active: None,
            sync,
            _stop_flusher: stop,
            group_sync,
        };
        inner.committed = inner.load_committed();
        inner.open_active()?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Sets the rotation size (default [`SEGMENT_BYTES`]); small values let tests use many
    /// segments.
    pub fn with_segment_bytes(self, bytes: u64) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.segment_bytes = bytes;
        }
        self
    }

    /// Sizes of the log, for metrics: cheap, from memory.
    pub fn stats(&self) -> LogStats {
        // Read-only: a poisoned lock still holds consistent counters.
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        LogStats {
            first_index: inner.first_index(),
            last_index: inner.log.back().map(|s| s.entry.get_log_id().index),
            entries: inner.log.len() as u64,
            bytes_on_disk: inner.segments.values().sum(),
            segments: inner.segments.len(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner<C>) -> io::Result<R>) -> io::Result<R> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("raft log store mutex poisoned"))?;
        f(&mut inner)
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.with(|s| Ok(s.read_range(range)))
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        self.with(|s| {
            Ok(LogState {
                last_purged_log_id: s.purged.clone(),
                last_log_id: s.last_log_id(),
            })
        })
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.with(|s| s.save_vote(vote))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.with(|s| Ok(s.vote.clone()))
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.with(|s| s.save_committed(committed))
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.with(|s| Ok(s.committed.clone()))
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        match self.with(|s| s.append(entries)) {
            Ok(None) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Ok(Some((file, queue))) => {
                // Reported done by the group-commit thread after its fsync.
                let done: Box<dyn FnOnce(io::Result<()>) + Send> =
                    Box::new(move |r| callback.log_io_completed(r));
                if let Err(mpsc::SendError((_, done))) = queue.send((file, done)) {
                    let e = io::Error::other("the fsync thread has stopped");
                    done(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(StorageIOError::write_logs(&e).into());
                }
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.with(|s| s.truncate(log_id.index))
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.with(|s| s.purge(log_id))
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::err_expect)]
mod tests {
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine, Snapshot};
    use openraft::testing::{log_id, StoreBuilder, Suite};
    use openraft::{BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};
    use openraft::{SnapshotMeta, StorageError, StoredMembership, Vote};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Req(pub String);

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Resp(pub Option<String>);

    openraft::declare_raft_types!(
        pub TC:
            D = Req,
            R = Resp,
            NodeId = u64,
            Node = BasicNode,
            SnapshotData = Cursor<Vec<u8>>,
    );

    type Store = LogStore<TC>;

    // ---- minimal in-memory state machine, after openraft's memstore ----

    #[derive(Default)]
    struct SmState {
        last_applied: Option<LogId<u64>>,
        last_membership: StoredMembership<u64, BasicNode>,
        data: Vec<String>,
        snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
        snapshot_count: u64,
    }

    #[derive(Clone, Default)]
    struct MemSm(Arc<Mutex<SmState>>);

    impl RaftSnapshotBuilder<TC> for MemSm {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<u64>> {
            let mut s = self.0.lock().unwrap();
            let bytes = encode(&s.data).unwrap();
            s.snapshot_count += 1;
            let meta = SnapshotMeta {
                last_log_id: s.last_applied,
                last_membership: s.last_membership.clone(),
                snapshot_id: format!("snap-{}", s.snapshot_count),
            };
            s.snapshot = Some((meta.clone(), bytes.clone()));
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes)),
            })
        }
    }

    impl RaftStateMachine<TC> for MemSm {
        type SnapshotBuilder = MemSm;

        async fn applied_state(
            &mut self,
        ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>>
        {
            let s = self.0.lock().unwrap();
            Ok((s.last_applied, s.last_membership.clone()))
        }

        async fn apply<I>(&mut self, entries: I) -> Result<Vec<Resp>, StorageError<u64>>
        where
            I: IntoIterator<Item = Entry<TC>> + Send,
        {
            let mut s = self.0.lock().unwrap();
            let mut out = Vec::new();
            for e in entries {
                s.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => out.push(Resp(None)),
                    EntryPayload::Normal(Req(v)) => {
                        s.data.push(v.clone());
                        out.push(Resp(Some(v)));
                    }
                    EntryPayload::Membership(m) => {
                        s.last_membership = StoredMembership::new(Some(e.log_id), m);
                        out.push(Resp(None));
                    }
                }
            }
            Ok(out)
        }

        async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
            self.clone()
        }

        async fn begin_receiving_snapshot(
            &mut self,
        ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
            Ok(Box::new(Cursor::new(Vec::new())))
        }

        async fn install_snapshot(
            &mut self,
            meta: &SnapshotMeta<u64, BasicNode>,
            snapshot: Box<Cursor<Vec<u8>>>,
        ) -> Result<(), StorageError<u64>> {
            let bytes = snapshot.into_inner();
            let data: Vec<String> = decode(&bytes).unwrap();
            let mut s = self.0.lock().unwrap();
            s.data = data;
            s.last_applied = meta.last_log_id;
            s.last_membership = meta.last_membership.clone();
            s.snapshot = Some((meta.clone(), bytes));
            Ok(())
        }

        async fn get_current_snapshot(
            &mut self,
        ) -> Result<Option<Snapshot<TC>>, StorageError<u64>> {
            let s = self.0.lock().unwrap();
            Ok(s.snapshot.clone().map(|(meta, bytes)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes)),
            }))
        }
    }

    struct Builder(Fsync);

    impl StoreBuilder<TC, Store, MemSm, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, Store, MemSm), StorageError<u64>> {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), self.0)
                .unwrap()
                .with_segment_bytes(300);
            Ok((dir, store, MemSm::default()))
        }
    }

    #[test]
    fn openraft_suite_always() {
        Suite::test_all(Builder(Fsync::Always)).unwrap();
    }

    #[test]
    fn openraft_suite_everysec() {
        Suite::test_all(Builder(Fsync::EverySec)).unwrap();
    }

    #[test]
    fn openraft_suite_no() {
        Suite::test_all(Builder(Fsync::No)).unwrap();
    }

    // ---- helpers ----

    fn ent(term: u64, index: u64) -> Entry<TC> {
        Entry {
            log_id: log_id(term, 0, index),
            payload: EntryPayload::Normal(Req(format!("value-{index}"))),
        }
    }

    async fn append_range(store: &mut Store, term: u64, range: std::ops::Range<u64>) {
        for i in range {
            store.blocking_append([ent(term, i)]).await.unwrap();
        }
    }

    async fn all(store: &mut Store) -> Vec<Entry<TC>> {
        store.try_get_log_entries(..).await.unwrap()
    }

    fn indexes(v: &[Entry<TC>]) -> Vec<u64> {
        v.iter().map(|e| e.log_id.index).collect()
    }

    fn segment_files(dir: &Path) -> Vec<u64> {
        list_segments(dir).unwrap()
    }

    fn last_segment(dir: &Path) -> PathBuf {
        seg_path(dir, *segment_files(dir).last().unwrap())
    }

    #[test]
    fn fsync_from_str() {
        assert_eq!("always".parse::<Fsync>().unwrap(), Fsync::Always);
        assert_eq!("EverySec".parse::<Fsync>().unwrap(), Fsync::EverySec);
        assert_eq!(" no ".parse::<Fsync>().unwrap(), Fsync::No);
        let err = "sometimes".parse::<Fsync>().unwrap_err().to_string();
        assert!(
            err.contains("sometimes") && err.contains("everysec"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reopen_keeps_entries_vote_purged() {
        for fsync in [Fsync::Always, Fsync::EverySec, Fsync::No] {
            let dir = tempfile::tempdir().unwrap();
            let want_vote = Vote::new(3, 1);
            let (want, want_state) = {
                let mut s = Store::open(dir.path(), fsync).unwrap();
                s.save_vote(&want_vote).await.unwrap();
                s.blocking_append((0..10).map(|i| ent(1, i))).await.unwrap();
                append_range(&mut s, 2, 10..50).await;
                s.purge(log_id(1, 0, 9)).await.unwrap();
                s.save_committed(Some(log_id(2, 0, 30))).await.unwrap();
                (all(&mut s).await, s.get_log_state().await.unwrap())
            };
            assert_eq!(indexes(&want), (10..50).collect::<Vec<_>>());
            let mut s = Store::open(dir.path(), fsync).unwrap();
            assert_eq!(s.read_vote().await.unwrap(), Some(want_vote), "{fsync:?}");
            assert_eq!(all(&mut s).await, want, "{fsync:?}");
            assert_eq!(s.get_log_state().await.unwrap(), want_state, "{fsync:?}");
            assert_eq!(want_state.last_purged_log_id, Some(log_id(1, 0, 9)));
            assert_eq!(s.read_committed().await.unwrap(), Some(log_id(2, 0, 30)));
            assert_eq!(s.stats().entries, 40);
        }
    }

    #[tokio::test]
    async fn truncate_and_purge_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), Fsync::Always)
            .unwrap()
            .with_segment_bytes(200);
        append_range(&mut s, 1, 0..100).await;
        let before = s.stats();
        assert!(before.segments >= 10, "{before:?}");
        assert_eq!(segment_files(dir.path()).len(), before.segments);

        s.truncate(log_id(1, 0, 70)).await.unwrap();
        assert_eq!(indexes(&all(&mut s).await), (0..70).collect::<Vec<_>>());
        let names = segment_files(dir.path());
        assert!(*names.last().unwrap() <= 69);
        assert!(names.len() < before.segments);

        s.purge(log_id(1, 0, 30)).await.unwrap();
        let after = segment_files(dir.path());
        for w in names.windows(2) {
            // A segment holds [w[0], w[1]); gone iff all of it is <= 30.
            assert_eq!(
                after.contains(&w[0]),
                w[1] - 1 > 30,
                "segment {} in {after:?}",
                w[0]
            );
        }
        assert!(after.contains(names.last().unwrap()));
        assert_eq!(s.stats().first_index, Some(31));
        let state = s.get_log_state().await.unwrap();
        drop(s);

        let mut s = Store::open(dir.path(), Fsync::Always)
            .unwrap()
            .with_segment_bytes(200);
        assert_eq!(indexes(&all(&mut s).await), (31..70).collect::<Vec<_>>());
        assert_eq!(s.get_log_state().await.unwrap(), state);
        assert_eq!(segment_files(dir.path()), after);

        // Replace the tail with a new term, across more rotations, and reopen again.
        s.truncate(log_id(1, 0, 60)).await.unwrap();
        append_range(&mut s, 2, 60..90).await;
        drop(s);
        let mut s = Store::open(dir.path(), Fsync::Always).unwrap();
        let got = all(&mut s).await;
        assert_eq!(indexes(&got), (31..90).collect::<Vec<_>>());
        assert!(got
            .iter()
            .all(|e| e.log_id.leader_id.term == if e.log_id.index < 60 { 1 } else { 2 }));

        // Purge beyond the last entry: nothing left, last_log_id is the purged id.
        s.purge(log_id(2, 0, 95)).await.unwrap();
        assert_eq!(all(&mut s).await.len(), 0);
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(2, 0, 95))
        );
        append_range(&mut s, 3, 96..100).await;
        drop(s);
        let mut s = Store::open(dir.path(), Fsync::Always).unwrap();
        assert_eq!(indexes(&all(&mut s).await), (96..100).collect::<Vec<_>>());
        assert_eq!(
            s.get_log_state().await.unwrap().last_purged_log_id,
            Some(log_id(2, 0, 95))
        );
    }

    #[tokio::test]
    async fn truncate_everything_then_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), Fsync::Always)
            .unwrap()
            .with_segment_bytes(100);
        append_range(&mut s, 1, 0..20).await;
        s.truncate(log_id(1, 0, 0)).await.unwrap();
        assert_eq!(s.stats().segments, 1);
        assert_eq!(s.get_log_state().await.unwrap().last_log_id, None);
        append_range(&mut s, 2, 0..5).await;
        drop(s);
        let mut s = Store::open(dir.path(), Fsync::Always).unwrap();
        assert_eq!(indexes(&all(&mut s).await), (0..5).collect::<Vec<_>>());
    }

    async fn reopen_after_damage(damage: impl FnOnce(&Path), want_after: u64) {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path(), Fsync::No)
                .unwrap()
                .with_segment_bytes(150);
            append_range(&mut s, 1, 0..20).await;
            assert!(s.stats().segments > 1);
        }
        damage(&last_segment(dir.path()));
        let mut s = Store::open(dir.path(), Fsync::No).unwrap();
        assert_eq!(
            indexes(&all(&mut s).await),
            (0..want_after).collect::<Vec<_>>()
        );
        append_range(&mut s, 2, want_after..want_after + 3).await;
        drop(s);
        let mut s = Store::open(dir.path(), Fsync::No).unwrap();
        let got = all(&mut s).await;
        assert_eq!(indexes(&got), (0..want_after + 3).collect::<Vec<_>>());
        assert_eq!(got.last().unwrap().log_id.leader_id.term, 2);
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[tokio::test]
    async fn torn_tail_chopped() {
        let chop = |p: &Path| {
            let len = fs::metadata(p).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - 3)
                .unwrap();
        };
        reopen_after_damage(chop, 19).await;
        // Only a header's worth left of the last record.
        let chop_to_header = |p: &Path| {
            let len = fs::metadata(p).unwrap().len();
            let data = fs::read(p).unwrap();
            let mut off = 0usize;
            let mut last = 0usize;
            while off < data.len() {
                last = off;
                off += HEADER + u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
            }
            assert_eq!(off as u64, len);
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(last as u64 + 5)
                .unwrap();
        };
        reopen_after_damage(chop_to_header, 19).await;
    }

    #[tokio::test]
    async fn torn_tail_garbage() {
        // Pseudo-random bytes (xorshift), zeros, and a well-formed header with a bad crc.
        let random = |p: &Path| {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let bytes: Vec<u8> = (0..77)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            append_bytes(p, &bytes);
        };
        reopen_after_damage(random, 20).await;
        reopen_after_damage(|p: &Path| append_bytes(p, &[0u8; 64]), 20).await;
        let bad_crc = |p: &Path| {
            let mut rec = Vec::new();
            push_record(&mut rec, b"0123456789").unwrap();
            rec[4] ^= 0xff;
            append_bytes(p, &rec);
        };
        reopen_after_damage(bad_crc, 20).await;
    }

    async fn damaged_first_segment(damage: impl FnOnce(&Path)) -> io::Error {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path(), Fsync::No)
                .unwrap()
                .with_segment_bytes(200);
            append_range(&mut s, 1, 0..30).await;
        }
        let first = seg_path(dir.path(), segment_files(dir.path())[0]);
        damage(&first);
        let files_before = segment_files(dir.path());
        let err = Store::open(dir.path(), Fsync::No)
            .err()
            .expect("open must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // Nothing was cut or deleted by the failed open.
        assert_eq!(segment_files(dir.path()), files_before);
        err
    }

    #[tokio::test]
    async fn corruption_in_earlier_segment_is_an_error() {
        let err = damaged_first_segment(|p: &Path| {
            let mut data = fs::read(p).unwrap();
            data[HEADER + 2] ^= 0x55;
            fs::write(p, data).unwrap();
        })
        .await;
        let msg = err.to_string();
        assert!(
            msg.contains("log-00000000000000000000.seg") && msg.contains("offset 0"),
            "{msg}"
        );
        assert!(msg.contains("crc mismatch"), "{msg}");

        let err = damaged_first_segment(|p: &Path| {
            let len = fs::metadata(p).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - 1)
                .unwrap();
        })
        .await;
        assert!(err.to_string().contains("short payload"), "{err}");
    }

    #[tokio::test]
    async fn missing_segment_is_a_gap_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path(), Fsync::No)
                .unwrap()
                .with_segment_bytes(200);
            append_range(&mut s, 1, 0..30).await;
        }
        let names = segment_files(dir.path());
        assert!(names.len() >= 3);
        fs::remove_file(seg_path(dir.path(), names[1])).unwrap();
        let err = Store::open(dir.path(), Fsync::No)
            .err()
            .expect("open must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("gap"), "{err}");
    }

    #[tokio::test]
    async fn bad_vote_file_is_an_error_and_append_rejects_holes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path(), Fsync::Always).unwrap();
            s.save_vote(&Vote::new(1, 2)).await.unwrap();
            append_range(&mut s, 1, 0..3).await;
            assert!(s.blocking_append([ent(1, 5)]).await.is_err());
        }
        fs::write(dir.path().join(VOTE), b"\x03\x00\x00\x00garbage").unwrap();
        let err = Store::open(dir.path(), Fsync::Always)
            .err()
            .expect("open must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("vote"), "{err}");
    }

    #[tokio::test]
    async fn reader_clone_sees_appends_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), Fsync::EverySec).unwrap();
        let mut r = s.get_log_reader().await;
        append_range(&mut s, 1, 0..5).await;
        assert_eq!(
            indexes(&r.try_get_log_entries(1..=3).await.unwrap()),
            vec![1, 2, 3]
        );
        let st = s.stats();
        assert_eq!(
            (st.first_index, st.last_index, st.entries, st.segments),
            (Some(0), Some(4), 5, 1)
        );
        assert_eq!(
            st.bytes_on_disk,
            fs::metadata(last_segment(dir.path())).unwrap().len()
        );
    }
}
