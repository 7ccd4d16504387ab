//! Challenge-response authentication with a shared cluster secret.
//!
//! The server sends a random nonce; the connecting side answers with its own
//! nonce and `HMAC-SHA256(secret, "hello" | server nonce | its nonce | role)`;
//! the server checks it (in constant time) and proves itself in turn with
//! `HMAC-SHA256(secret, "welcome" | its nonce | server nonce)`. Neither side
//! sends the secret, a recorded exchange cannot be replayed (fresh nonces),
//! and a client cannot be lured into talking to a node without the secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A fresh 256-bit nonce from the operating system's CSPRNG.
pub fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).expect("the operating system's random source is available");
    n
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(&(p.len() as u64).to_le_bytes());
        m.update(p);
    }
    m
}

/// The proof over `parts`.
pub fn prove(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(secret, parts).finalize().into_bytes().into()
}

/// Whether `proof` is the proof over `parts`, compared in constant time.
pub fn verify(secret: &[u8], parts: &[&[u8]], proof: &[u8; 32]) -> bool {
    mac(secret, parts).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_secret_and_every_part() {
        let p = prove(b"secret", &[b"a", b"bc"]);
        assert!(verify(b"secret", &[b"a", b"bc"], &p));
        assert!(!verify(b"other", &[b"a", b"bc"], &p));
        assert!(!verify(b"secret", &[b"ab", b"c"], &p));
        assert_ne!(nonce(), nonce());
    }
}
