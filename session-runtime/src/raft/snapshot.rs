//! The snapshot file: a node's whole store at one log index, written and
//! read one session at a time.
//!
//! ```text
//! "SESSNAP1"                      8 bytes
//! u32 LE length | Header          meta (last log id, membership), next slot, count
//! ( u32 LE length | SnapshotEntry )*  `count` times, each at most the record limit
//! u32 LE crc32 of every byte after the magic
//! ```
//!
//! The leader sends the file as it is, in openraft's bounded chunks; the
//! receiver writes the chunks to a file of its own and reads it back here.
//! Neither side holds more than one session (or one chunk) in memory
//! besides the store it builds.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::net::message::SnapshotEntry;
use crate::store::{Limits, Store, StoreView};

const MAGIC: &[u8; 8] = b"SESSNAP1";

/// What precedes the sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) meta: SnapshotMeta<u64, BasicNode>,
    pub(crate) next_slot: u64,
    pub(crate) sessions: u64,
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
}

/// Writes `view` at `meta` to `path` and fsyncs it. Returns its size.
pub(crate) fn write(
    path: &Path,
    meta: &SnapshotMeta<u64, BasicNode>,
    view: &StoreView,
) -> io::Result<u64> {
    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    let mut crc = crc32fast::Hasher::new();
    let mut bytes = MAGIC.len() as u64;
    let mut record = |out: &mut BufWriter<File>, payload: &[u8]| -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| invalid("record over 4 GiB"))?;
        let len = len.to_le_bytes();
        crc.update(&len);
        crc.update(payload);
        out.write_all(&len)?;
        out.write_all(payload)?;
        bytes += 4 + payload.len() as u64;
        Ok(())
    };
    let header = Header {
        meta: meta.clone(),
        next_slot: view.next_slot(),
        sessions: view.len() as u64,
    };
    record(&mut out, &codec::encode(&header))?;
    let mut buf = Vec::new();
    for entry in view.entries() {
        buf.clear();
        codec::encode_into(&entry, &mut buf);
        record(&mut out, &buf)?;
    }
    out.write_all(&crc.finalize().to_le_bytes())?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(bytes + 4)
}

struct Records<R> {
    input: R,
    crc: crc32fast::Hasher,
    max_record: usize,
}

impl<R: Read> Records<R> {
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > self.max_record {
            return Err(invalid(format!(
                "record of {n} bytes over the {}-byte limit",
                self.max_record
            )));
        }
        buf.clear();
        buf.resize(n, 0);
        self.input.read_exact(buf)?;
        self.crc.update(&len);
        self.crc.update(buf);
        Ok(())
    }
}

/// Opens the records of a snapshot file and reads its header.
fn open(file: File, limits: Limits) -> io::Result<(Records<BufReader<File>>, Header)> {
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a snapshot file (bad magic)"));
    }
    let mut records = Records {
        input,
        crc: crc32fast::Hasher::new(),
        // A session record is its tree plus a little metadata.
        max_record: limits.max_session_bytes.saturating_add(64 << 10),
    };
    let mut buf = Vec::new();
    records.next(&mut buf)?;
    let header: Header = codec::decode(&buf).map_err(|e| invalid(format!("header: {e}")))?;
    Ok((records, header))
}

/// Reads a snapshot file into a new store (the caller's store is not
/// touched, so a bad file leaves it intact). `now` is every session's last
/// access. Returns the header and the store.
pub(crate) fn read(
    file: File,
    limits: Limits,
    default_ttl: Duration,
    now: Instant,
) -> io::Result<(Header, Store)> {
    let (mut records, header) = open(file, limits)?;
    let mut buf = Vec::new();
    if header.sessions > limits.max_sessions as u64 {
        return Err(invalid(format!(
            "{} sessions, over this node's limit of {}",
            header.sessions, limits.max_sessions
        )));
    }
    let mut store = Store::new(limits, default_ttl);
    for i in 0..header.sessions {
        records.next(&mut buf)?;
        let entry: SnapshotEntry =
            codec::decode(&buf).map_err(|e| invalid(format!("session {i}: {e}")))?;
        store.restore(entry, now).map_err(invalid)?;
    }
    store.set_next_slot(header.next_slot);
    let mut crc = [0u8; 4];
    records.input.read_exact(&mut crc)?;
    if u32::from_le_bytes(crc) != records.crc.finalize() {
        return Err(invalid("checksum mismatch"));
    }
    if records.input.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("trailing bytes after the checksum"));
    }
    Ok((header, store))
}

/// Reads only the header of a snapshot file.
pub(crate) fn read_header(file: File, limits: Limits) -> io::Result<Header> {
    open(file, limits).map(|(_, header)| header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;
    use crate::value::Value;

    fn store(n: usize) -> Store {
        let mut s = Store::new(Limits::default(), Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..n {
            let tree = Value::Record(vec![(0, Value::Leaf(vec![i as u8; 10]))]).to_bytes();
            s.create(SessionId::random(), 7, &[0], 0, &tree, now)
                .expect("fits");
        }
        s
    }

    fn meta() -> SnapshotMeta<u64, BasicNode> {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(3, 1),
                42,
            )),
            last_membership: Default::default(),
            snapshot_id: "test".into(),
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_the_store_it_was_written_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let original = store(50);
        write(&path, &meta(), &original.view()).expect("writes");
        let file = File::open(&path).expect("opens");
        let (header, copy) = read(
            file,
            Limits::default(),
            Duration::from_secs(60),
            Instant::now(),
        )
        .expect("reads");
        assert_eq!(header.meta.last_log_id, meta().last_log_id);
        assert_eq!(copy.dump(), original.dump());
        assert_eq!(copy.next_slot(), original.next_slot());
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        write(&path, &meta(), &store(5).view()).expect("writes");
        let good = std::fs::read(&path).expect("reads");
        let limits = Limits::default();
        let ttl = Duration::from_secs(60);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() - 7].to_vec()),
            ("empty", Vec::new()),
            ("trailing", [good.clone(), vec![0]].concat()),
        ];
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        cases.push(("flipped bit", flipped));
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("oversized length", huge));
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).expect("writes");
            let file = File::open(&path).expect("opens");
            assert!(
                read(file, limits, ttl, Instant::now()).is_err(),
                "{what} snapshot accepted"
            );
        }
    }
}
