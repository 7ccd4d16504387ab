//! The replication protocol as a state machine without sockets.
//!
//! The node's tasks feed it what happened (a write was committed, a backup
//! acknowledged an offset, a vote was requested, a message with some epoch
//! arrived) and act on what it answers (send these frames, wake these
//! writers, step down, resynchronise). So the hard cases (stale epochs,
//! gaps, backlog overflow, promotion, ack counting) are unit tests here.
//!
//! - [`ReplicationLog`]: the stream of committed changes, its id, its
//!   offsets and its bounded backlog; decides between partial and full
//!   resynchronisation.
//! - [`Acks`]: which offset each backup has applied, and which `Sync`
//!   writers may be answered.
//! - [`Term`]: epochs and votes.

mod acks;
mod log;
mod term;

pub use acks::Acks;
pub use log::{Gap, ReplicationLog, Resume};
pub use term::{quorum, EpochCheck, Term};
