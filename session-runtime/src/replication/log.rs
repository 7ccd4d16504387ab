//! The replication stream and its backlog.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::id::random_u64;

/// An entry out of sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gap in the replication stream: expected offset {expected}, got {got}")]
pub struct Gap {
    /// The offset that should have come.
    pub expected: u64,
    /// The offset that came.
    pub got: u64,
}

/// How a backup that asked to resume at some offset is brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Send these entries (possibly none), then the live stream.
    Partial(Vec<Bytes>),
    /// The backlog no longer holds the offset, or the backup followed
    /// another history: send a full snapshot.
    Full,
}

/// The stream of committed changes of one node: an id, the offset of the
/// last change, and the most recent changes (as encoded frames) within a
/// byte budget.
///
/// A node that is promoted starts a new stream id but keeps the old one as
/// a secondary id, valid up to the offset where it was promoted, so that
/// backups of the old primary resume partially (as Redis PSYNC2 does).
#[derive(Debug, Clone)]
pub struct ReplicationLog {
    id: u64,
    offset: u64,
    secondary: Option<(u64, u64)>,
    backlog: VecDeque<(u64, Bytes)>,
    bytes: usize,
    max_bytes: usize,
}

impl ReplicationLog {
    /// An empty stream with a fresh id, keeping at most `max_bytes` of
    /// entries.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            id: random_u64(),
            offset: 0,
            secondary: None,
            backlog: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The stream's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The offset of the last change.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held in the backlog.
    pub fn backlog_bytes(&self) -> usize {
        self.bytes
    }

    /// The oldest offset the backlog holds, if any.
    pub fn first_offset(&self) -> Option<u64> {
        self.backlog.front().map(|(o, _)| *o)
    }

    /// Appends the encoded entry for offset `self.offset() + 1`, dropping
    /// the oldest entries beyond the byte budget.
    pub fn append(&mut self, frame: Bytes) -> u64 {
        self.offset += 1;
        self.bytes += frame.len();
        self.backlog.push_back((self.offset, frame));
        while self.bytes > self.max_bytes {
            match self.backlog.pop_front() {
                Some((_, f)) => self.bytes -= f.len(),
                None => break,
            }
        }
        self.offset
    }

    /// What a backup that holds stream `repl_id` up to `offset` needs.
    pub fn resume(&self, repl_id: u64, offset: u64) -> Resume {
        let known = (repl_id == self.id && offset <= self.offset)
            || self
                .secondary
                .is_some_and(|(id, last)| id == repl_id && offset <= last);
        if !known {
            return Resume::Full;
        }
        if offset == self.offset {
            return Resume::Partial(Vec::new());
        }
        match self.first_offset() {
            Some(first) if first <= offset + 1 => Resume::Partial(
                self.backlog
                    .iter()
                    .filter(|(o, _)| *o > offset)
                    .map(|(_, f)| f.clone())
                    .collect(),
            ),
            _ => Resume::Full,
        }
    }

    /// Checks that an entry received from a primary is the next one: a gap
    /// (or a repeat) means the stream is broken and must be resumed.
    pub fn check_next(&self, offset: u64) -> Result<(), Gap> {
        let expected = self.offset + 1;
        if offset == expected {
            Ok(())
        } else {
            Err(Gap {
                expected,
                got: offset,
            })
        }
    }

    /// Starts a new stream id on promotion, keeping the old one valid up to
    /// the current offset.
    pub fn promote(&mut self) {
        self.secondary = Some((self.id, self.offset));
        self.id = random_u64();
    }

    /// A backup loaded a snapshot of stream `id` at `offset`: the backlog
    /// restarts there.
    pub fn reset(&mut self, id: u64, offset: u64) {
        self.id = id;
        self.offset = offset;
        self.secondary = None;
        self.backlog.clear();
        self.bytes = 0;
    }

    /// A backup resumed partially from a primary whose stream is now `id`
    /// (a promoted node's new id): our offsets stay valid under the old id.
    pub fn follow(&mut self, id: u64) {
        if id != self.id {
            self.secondary = Some((self.id, self.offset));
            self.id = id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn entries_must_come_in_sequence() {
        let mut log = ReplicationLog::new(1000);
        log.append(frame(1));
        assert_eq!(log.check_next(2), Ok(()));
        assert_eq!(
            log.check_next(4),
            Err(Gap {
                expected: 2,
                got: 4
            })
        );
        assert_eq!(
            log.check_next(1),
            Err(Gap {
                expected: 2,
                got: 1
            }),
            "a repeat is a gap too"
        );
    }

    #[test]
    fn a_backup_within_the_backlog_gets_only_what_it_missed() {
        let mut log = ReplicationLog::new(1000);
        for _ in 0..5 {
            log.append(frame(10));
        }
        assert_eq!(
            log.resume(log.id(), 3),
            Resume::Partial(vec![frame(10), frame(10)])
        );
        assert_eq!(log.resume(log.id(), 5), Resume::Partial(vec![]));
    }

    #[test]
    fn backlog_overflow_forces_a_full_resync() {
        let mut log = ReplicationLog::new(25);
        for _ in 0..5 {
            log.append(frame(10));
        }
        assert_eq!(log.first_offset(), Some(4));
        assert!(log.backlog_bytes() <= 25);
        assert_eq!(
            log.resume(log.id(), 3),
            Resume::Partial(vec![frame(10), frame(10)])
        );
        assert_eq!(log.resume(log.id(), 2), Resume::Full);
    }

    #[test]
    fn unknown_streams_and_offsets_from_the_future_need_a_full_resync() {
        let mut log = ReplicationLog::new(1000);
        log.append(frame(1));
        assert_eq!(log.resume(log.id() ^ 1, 1), Resume::Full);
        assert_eq!(log.resume(log.id(), 2), Resume::Full);
    }

    #[test]
    fn after_promotion_the_old_stream_id_still_resumes_partially() {
        let mut log = ReplicationLog::new(1000);
        for _ in 0..3 {
            log.append(frame(1));
        }
        let old = log.id();
        log.promote();
        assert_ne!(log.id(), old);
        log.append(frame(2));
        assert_eq!(
            log.resume(old, 2),
            Resume::Partial(vec![frame(1), frame(2)])
        );
        // A backup that got further than us on the old stream diverged.
        assert_eq!(log.resume(old, 4), Resume::Full);
    }

    #[test]
    fn a_backup_follows_a_promoted_primary_without_losing_its_place() {
        let mut backup = ReplicationLog::new(1000);
        backup.reset(7, 10);
        backup.follow(9);
        assert_eq!(backup.id(), 9);
        assert_eq!(backup.resume(7, 10), Resume::Partial(vec![]));
    }
}
