//! The store as openraft's state machine.
//!
//! Applying an entry runs [`Store::apply_op`] under the store's lock, one
//! batch at a time. A snapshot is built from an O(1) copy of the store
//! ([`Store::view`]) taken in `get_snapshot_builder`, in sequence with the
//! applies, and written on a blocking thread while applies go on. An
//! installed snapshot is read into a new store first; the old one is
//! replaced only when the whole file read back, so a failed install leaves
//! the node's state intact.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership,
};

use super::snapshot;
use super::{LogId, TypeConfig};
use crate::net::message::{Applied, ErrorReply};
use crate::store::{Limits, Store, StoreView};

/// The state a node's readers and its state machine share.
#[derive(Debug)]
pub struct ReplicaState {
    /// The sessions.
    pub store: Store,
    /// The last entry applied to `store`.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership<u64, BasicNode>,
}

/// The store of a node, shared by its state machine (which writes it) and
/// its request handlers (which read it once the leader confirmed it is
/// current).
#[derive(Debug)]
pub struct Replica {
    state: Mutex<ReplicaState>,
    /// Client operations applied.
    pub ops_applied: AtomicU64,
    /// Expiries applied.
    pub expired: AtomicU64,
    /// Snapshots built.
    pub snapshots_built: AtomicU64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: AtomicU64,
}

impl Replica {
    /// The shared state; never held across an `await`.
    pub fn lock(&self) -> MutexGuard<'_, ReplicaState> {
        // A panic while holding the lock would be a bug in the store; its
        // all-or-nothing apply keeps the data consistent, so go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const CURRENT: &str = "current.snap";

/// The state machine of one node: its [`Replica`] and its snapshot folder.
#[derive(Debug, Clone)]
pub struct StateMachine {
    replica: Arc<Replica>,
    dir: PathBuf,
    limits: Limits,
    default_ttl: Duration,
    /// The file the snapshot being received is written to.
    receiving: Option<PathBuf>,
}

fn snap_error(verb: ErrorVerb, e: io::Error) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e)
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("snapshot task failed: {e}"))
}

impl StateMachine {
    /// Opens the state machine of a node whose snapshots live in `dir`:
    /// the store starts from the current snapshot, if any (openraft then
    /// re-applies the committed log after it).
    pub fn open(dir: &Path, limits: Limits, default_ttl: Duration) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        // Leftovers of a build or a transfer cut short.
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_file(&path)?;
            }
        }
        let current = dir.join(CURRENT);
        let state = if current.exists() {
            let file = std::fs::File::open(&current)?;
            let (header, store) = snapshot::read(file, limits, default_ttl, Instant::now())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", current.display())))?;
            tracing::info!(
                sessions = store.len(),
                last_log = ?header.meta.last_log_id,
                "store restored from snapshot"
            );
            ReplicaState {
                store,
                last_applied: header.meta.last_log_id,
                membership: header.meta.last_membership,
            }
        } else {
            ReplicaState {
                store: Store::new(limits, default_ttl),
                last_applied: None,
                membership: StoredMembership::default(),
            }
        };
        Ok(StateMachine {
            replica: Arc::new(Replica {
                state: Mutex::new(state),
                ops_applied: AtomicU64::new(0),
                expired: AtomicU64::new(0),
                snapshots_built: AtomicU64::new(0),
                snapshots_installed: AtomicU64::new(0),
            }),
            dir: dir.to_path_buf(),
            limits,
            default_ttl,
            receiving: None,
        })
    }

    /// The replica this state machine writes.
    pub fn replica(&self) -> Arc<Replica> {
        self.replica.clone()
    }
}

/// Builds one snapshot from a copy of the store.
#[derive(Debug)]
pub struct SnapshotBuilder {
    view: StoreView,
    meta: SnapshotMeta<u64, BasicNode>,
    dir: PathBuf,
    replica: Arc<Replica>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (view, meta, dir) = (self.view.clone(), self.meta.clone(), self.dir.clone());
        let path = tokio::task::spawn_blocking(move || -> io::Result<PathBuf> {
            let tmp = dir.join(format!("build-{}.tmp", meta.snapshot_id));
            let bytes = snapshot::write(&tmp, &meta, &view)?;
            let current = dir.join(CURRENT);
            std::fs::rename(&tmp, &current)?;
            std::fs::File::open(&dir)?.sync_all()?;
            tracing::info!(sessions = view.len(), bytes, last_log = ?meta.last_log_id, "snapshot built");
            Ok(current)
        })
        .await
        .map_err(join_error)
        .and_then(|r| r)
        .map_err(|e| snap_error(ErrorVerb::Write, e))?;
        self.replica.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snap_error(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let s = self.replica.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Result<Applied, ErrorReply>>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut s = self.replica.lock();
        for entry in entries {
            s.last_applied = Some(entry.log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => Ok(Applied::Nothing),
                EntryPayload::Normal(op) => {
                    let r = s.store.apply_op(&op, now);
                    self.replica.ops_applied.fetch_add(1, Ordering::Relaxed);
                    if matches!(
                        (&op, &r),
                        (crate::net::message::Op::Expire { .. }, Ok(Applied::Removed))
                    ) {
                        self.replica.expired.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                }
                EntryPayload::Membership(m) => {
                    s.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(Applied::Nothing)
                }
            };
            out.push(answer);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let s = self.replica.lock();
        let id = crate::id::random_u64();
        let meta = SnapshotMeta {
            last_log_id: s.last_applied,
            last_membership: s.membership.clone(),
            snapshot_id: format!("{}-{id:016x}", s.last_applied.map_or(0, |l| l.index)),
        };
        SnapshotBuilder {
            view: s.store.view(),
            meta,
            dir: self.dir.clone(),
            replica: self.replica.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        let path = self
            .dir
            .join(format!("recv-{:016x}.tmp", crate::id::random_u64()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| snap_error(ErrorVerb::Write, e))?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = tokio::fs::remove_file(old).await;
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        let file = snapshot.into_std().await;
        let (limits, ttl, dir) = (self.limits, self.default_ttl, self.dir.clone());
        let received = self.receiving.take();
        let expected = meta.last_log_id;
        let loaded =
            tokio::task::spawn_blocking(move || -> io::Result<(snapshot::Header, Store)> {
                use std::io::Seek;
                let mut file = file;
                file.sync_all()?;
                file.rewind()?;
                let read = snapshot::read(file, limits, ttl, Instant::now()).and_then(|l| {
                    if l.0.meta.last_log_id == expected {
                        Ok(l)
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "snapshot file does not match its metadata",
                        ))
                    }
                });
                let Some(path) = received else {
                    return Err(io::Error::other(
                        "a snapshot to install that was not received",
                    ));
                };
                match read {
                    Ok(loaded) => {
                        std::fs::rename(&path, dir.join(CURRENT))?;
                        std::fs::File::open(&dir)?.sync_all()?;
                        Ok(loaded)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(e)
                    }
                }
            })
            .await
            .map_err(join_error)
            .and_then(|r| r);
        let (_, store) = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "refusing a snapshot; the store is unchanged");
                return Err(snap_error(ErrorVerb::Read, e));
            }
        };
        let sessions = store.len();
        {
            let mut s = self.replica.lock();
            s.store = store;
            s.last_applied = meta.last_log_id;
            s.membership = meta.last_membership.clone();
        }
        self.replica
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(sessions, last_log = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let path = self.dir.join(CURRENT);
        if !path.exists() {
            return Ok(None);
        }
        let limits = self.limits;
        let p = path.clone();
        let header = tokio::task::spawn_blocking(move || {
            snapshot::read_header(std::fs::File::open(&p)?, limits)
        })
        .await
        .map_err(join_error)
        .and_then(|r| r)
        .map_err(|e| snap_error(ErrorVerb::Read, e))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snap_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: header.meta,
            snapshot: Box::new(file),
        }))
    }
}
