//! Session ids: 128 bits from the operating system's CSPRNG.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The id of a session: 128 random bits, unguessable, shown as 32 hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system has no random source, which no supported
    /// platform lacks: handing out guessable ids instead would be worse.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        Self(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// An id from its bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A 64-bit hash of the id, for routing (the id is random, so its first
    /// bytes are as good as any hash).
    pub fn route_key(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session id is 32 hexadecimal digits")]
pub struct ParseSessionIdError;

impl FromStr for SessionId {
    type Err = ParseSessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(ParseSessionIdError);
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| ParseSessionIdError)?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| ParseSessionIdError)?;
        }
        Ok(Self(out))
    }
}

/// A random 64-bit number (replication ids, nonces' parts, commit ids).
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_round_trip_as_hex() {
        let a = SessionId::random();
        assert_ne!(a, SessionId::random());
        assert_eq!(a.to_string().parse::<SessionId>(), Ok(a));
        assert!("xyz".parse::<SessionId>().is_err());
        assert!("zz".repeat(16).parse::<SessionId>().is_err());
    }
}
