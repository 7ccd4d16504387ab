//! Epochs and votes.
//!
//! Every replication message carries its sender's epoch. A node ignores
//! messages from lower epochs and adopts higher ones, stepping down if it
//! was primary. A backup that lost its primary becomes a candidate for the
//! next epoch and needs a quorum of votes; a voter grants at most one vote
//! per epoch, only to a candidate whose stream is at least as far along as
//! its own, and only when it has lost the primary too. Once a node voted in
//! an epoch it acknowledges nothing from an older one, so an old primary can
//! never again collect the acknowledgements a `Sync` write needs.

/// Votes needed to lead a set of `members` nodes.
///
/// A majority, except in a set of two, where the surviving node may lead
/// alone: its partner is the only node that could acknowledge the old
/// primary's `Sync` writes, and by promoting it stops doing so.
pub fn quorum(members: usize) -> usize {
    if members <= 2 {
        1
    } else {
        members / 2 + 1
    }
}

/// How a message's epoch compares with ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochCheck {
    /// Older: refuse the message.
    Stale,
    /// Same epoch.
    Current,
    /// Newer: we adopted it (and step down if we led).
    Newer,
}

/// The current epoch and this node's vote in it.
#[derive(Debug, Clone, Default)]
pub struct Term {
    epoch: u64,
    voted_for: Option<String>,
}

impl Term {
    /// Epoch 0, no vote.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Compares a message's epoch with ours, adopting a newer one.
    pub fn observe(&mut self, epoch: u64) -> EpochCheck {
        use std::cmp::Ordering::*;
        match epoch.cmp(&self.epoch) {
            Less => EpochCheck::Stale,
            Equal => EpochCheck::Current,
            Greater => {
                self.epoch = epoch;
                self.voted_for = None;
                EpochCheck::Newer
            }
        }
    }

    /// Becomes a candidate: the next epoch, with a vote for ourselves.
    pub fn stand(&mut self, me: &str) -> u64 {
        self.epoch += 1;
        self.voted_for = Some(me.to_string());
        self.epoch
    }

    /// Decides a vote for `candidate` in `epoch`. `up_to_date`: the
    /// candidate's stream is at least as far along as ours; `primary_alive`:
    /// we still hear from a primary (then we do not help depose it).
    pub fn vote(
        &mut self,
        epoch: u64,
        candidate: &str,
        up_to_date: bool,
        primary_alive: bool,
    ) -> bool {
        if epoch < self.epoch || primary_alive || !up_to_date {
            return false;
        }
        self.observe(epoch);
        match &self.voted_for {
            Some(v) if v != candidate => false,
            _ => {
                self.voted_for = Some(candidate.to_string());
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_epochs_are_refused_and_newer_ones_adopted() {
        let mut t = Term::new();
        assert_eq!(t.observe(2), EpochCheck::Newer);
        assert_eq!(t.observe(1), EpochCheck::Stale);
        assert_eq!(t.observe(2), EpochCheck::Current);
        assert_eq!(t.epoch(), 2);
    }

    #[test]
    fn one_vote_per_epoch_and_only_for_an_up_to_date_candidate() {
        let mut t = Term::new();
        assert!(!t.vote(1, "a", false, false), "behind");
        assert!(!t.vote(1, "a", true, true), "primary alive");
        assert!(t.vote(1, "a", true, false));
        assert!(
            t.vote(1, "a", true, false),
            "the same candidate may ask again"
        );
        assert!(!t.vote(1, "b", true, false), "second candidate, same epoch");
        assert!(t.vote(2, "b", true, false), "a new epoch frees the vote");
        assert!(!t.vote(1, "c", true, false), "stale epoch");
    }

    #[test]
    fn a_candidate_votes_for_itself() {
        let mut t = Term::new();
        t.observe(3);
        assert_eq!(t.stand("me"), 4);
        assert!(!t.vote(4, "other", true, false));
    }

    #[test]
    fn quorum_is_a_majority_except_for_pairs() {
        assert_eq!([1, 2, 3, 4, 5].map(quorum), [1, 1, 2, 3, 3]);
    }
}
