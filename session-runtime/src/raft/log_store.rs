//! TEMPORARY in-memory stand-in for the durable log (being written).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogReader, RaftTypeConfig, StorageError, Vote};

/// When log entries are fsync'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before each append is acknowledged.
    Always,
    /// About once a second.
    EverySec,
    /// Never (the OS decides).
    No,
}

impl FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            other => Err(format!(
                "fsync policy must be always, everysec or no, not {other:?}"
            )),
        }
    }
}

/// Log counters.
#[derive(Debug, Clone)]
pub struct LogStats {
    /// First index held.
    pub first_index: u64,
}

#[derive(Debug)]
struct Inner<C: RaftTypeConfig> {
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    purged: Option<LogId<C::NodeId>>,
    log: std::collections::BTreeMap<u64, C::Entry>,
}

/// The log.
#[derive(Debug)]
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Mutex<Inner<C>>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Opens.
    pub fn open(_dir: &Path, _fsync: Fsync) -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                vote: None,
                committed: None,
                purged: None,
                log: Default::default(),
            })),
        })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<C>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + openraft::OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| (*e).clone())
            .collect())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        use openraft::RaftLogId;
        let s = self.lock();
        let last = s
            .log
            .values()
            .next_back()
            .map(|e| e.get_log_id().clone())
            .or(s.purged.clone());
        Ok(LogState {
            last_purged_log_id: s.purged.clone(),
            last_log_id: last,
        })
    }
    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }
    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.lock().vote = Some(vote.clone());
        Ok(())
    }
    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.lock().vote.clone())
    }
    async fn save_committed(
        &mut self,
        c: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.lock().committed = c;
        Ok(())
    }
    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.lock().committed.clone())
    }
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        use openraft::RaftLogId;
        let mut s = self.lock();
        for e in entries {
            s.log.insert(e.get_log_id().index, e);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }
    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut s = self.lock();
        let _ = s.log.split_off(&log_id.index);
        Ok(())
    }
    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut s = self.lock();
        s.log = s.log.split_off(&(log_id.index + 1));
        s.purged = Some(log_id);
        Ok(())
    }
}
