//! Counting backup acknowledgements for `Sync` writes.

use std::collections::HashMap;

/// The offset each connected backup has applied, and the writers waiting for
/// enough backups to reach theirs.
#[derive(Debug, Default)]
pub struct Acks {
    links: HashMap<u64, u64>,
    waiters: Vec<Waiter>,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    offset: u64,
    needed: u8,
    token: u64,
}

impl Acks {
    /// No backups, no waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backup linked up, having applied up to `offset`.
    pub fn add_link(&mut self, link: u64, offset: u64) {
        self.links.insert(link, offset);
    }

    /// A backup is gone; its acknowledgements no longer count.
    pub fn remove_link(&mut self, link: u64) {
        self.links.remove(&link);
    }

    /// Backups linked.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Each backup's applied offset.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.links.iter().map(|(l, o)| (*l, *o))
    }

    /// Backups that applied `offset` or later.
    pub fn count(&self, offset: u64) -> u8 {
        let n = self.links.values().filter(|o| **o >= offset).count();
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// A writer waits for `needed` backups to apply `offset`. Returns
    /// whether that is already the case (then nothing is recorded).
    pub fn wait(&mut self, offset: u64, needed: u8, token: u64) -> bool {
        if self.count(offset) >= needed {
            return true;
        }
        self.waiters.push(Waiter {
            offset,
            needed,
            token,
        });
        false
    }

    /// A writer gave up (timed out).
    pub fn cancel(&mut self, token: u64) {
        self.waiters.retain(|w| w.token != token);
    }

    /// A backup applied everything up to `offset`. Returns the tokens of
    /// the writers that may now be answered. Acknowledgements only move
    /// forward; an older one is ignored.
    pub fn ack(&mut self, link: u64, offset: u64) -> Vec<u64> {
        match self.links.get_mut(&link) {
            Some(o) if *o < offset => *o = offset,
            _ => return Vec::new(),
        }
        let mut ready = Vec::new();
        let links = &self.links;
        self.waiters.retain(|w| {
            let n = links.values().filter(|o| **o >= w.offset).count();
            if n >= usize::from(w.needed) {
                ready.push(w.token);
                false
            } else {
                true
            }
        });
        ready
    }

    /// Forgets every waiter (on step-down), returning their tokens so they
    /// can be told their write is not durable.
    pub fn drain(&mut self) -> Vec<u64> {
        self.links.clear();
        self.waiters.drain(..).map(|w| w.token).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_are_released_when_enough_backups_reach_their_offset() {
        let mut acks = Acks::new();
        acks.add_link(1, 0);
        acks.add_link(2, 0);
        assert!(!acks.wait(5, 2, 100));
        assert!(!acks.wait(3, 1, 101));
        assert_eq!(acks.ack(1, 4), vec![101]);
        assert_eq!(acks.ack(2, 5), Vec::<u64>::new());
        assert_eq!(acks.ack(1, 5), vec![100]);
    }

    #[test]
    fn old_and_unknown_acks_count_for_nothing() {
        let mut acks = Acks::new();
        acks.add_link(1, 10);
        assert!(!acks.wait(11, 1, 7));
        assert!(acks.ack(1, 9).is_empty());
        assert!(acks.ack(2, 20).is_empty());
        acks.remove_link(1);
        assert_eq!(acks.count(0), 0);
        assert_eq!(acks.drain(), vec![7]);
    }

    #[test]
    fn a_write_already_acknowledged_does_not_wait() {
        let mut acks = Acks::new();
        acks.add_link(1, 10);
        assert!(acks.wait(10, 1, 1));
        assert!(!acks.wait(10, 2, 2));
    }
}
