//! The network side shared by nodes and clients: frames, messages, and the
//! authenticated handshake.

pub mod auth;
pub mod connection;
pub mod message;
pub mod stats;

pub use connection::{Connection, NetError};
pub use stats::Stats;
