//! The session cookie: a session id signed with HMAC-SHA256.
//!
//! ```text
//! session=<32 hex digits of the id>.<64 hex digits of HMAC(key, id)>
//! ```
//!
//! A cookie whose signature does not verify (forged, tampered, or signed
//! with another key) is treated as no cookie at all.

use std::fmt::Write;
use std::time::Duration;

use http::header::{HeaderMap, COOKIE};
use http::HeaderValue;

use crate::id::SessionId;
use crate::net::auth;

/// Which cross-site requests carry the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Only same-site requests.
    Strict,
    /// Same-site requests and top-level navigations (the default).
    Lax,
    /// Every request (requires `Secure`).
    None,
}

/// How the session cookie is named, signed and scoped.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// Cookie name (default `session`).
    pub name: String,
    /// Key that signs session ids; every application server of a
    /// deployment uses the same one.
    pub key: Vec<u8>,
    /// Send only over HTTPS (default on; turn off only for plain-HTTP
    /// development on loopback).
    pub secure: bool,
    /// The `SameSite` attribute (default `Lax`).
    pub same_site: SameSite,
    /// The `Path` attribute (default `/`).
    pub path: String,
    /// The `Max-Age` attribute; `None` for a cookie that ends with the
    /// browser session (default 30 minutes, the stores' default idle TTL).
    pub max_age: Option<Duration>,
}

impl CookieConfig {
    /// Defaults, with the signing key.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            name: "session".into(),
            key: key.into(),
            secure: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            max_age: Some(Duration::from_secs(30 * 60)),
        }
    }

    /// The cookie value for a session id.
    pub fn sign(&self, id: &SessionId) -> String {
        let mac = auth::prove(&self.key, &[b"session-cookie", id.as_bytes()]);
        let mut out = id.to_string();
        out.push('.');
        for b in mac {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The session id in a cookie value, if its signature verifies.
    pub fn verify(&self, value: &str) -> Option<SessionId> {
        let (id, mac) = value.split_once('.')?;
        let id: SessionId = id.parse().ok()?;
        if mac.len() != 64 {
            return None;
        }
        let mut proof = [0u8; 32];
        for (i, pair) in mac.as_bytes().chunks(2).enumerate() {
            proof[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        auth::verify(&self.key, &[b"session-cookie", id.as_bytes()], &proof).then_some(id)
    }

    /// The verified session id a request's cookies name.
    pub fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .filter(|(name, _)| *name == self.name)
            .find_map(|(_, value)| self.verify(value))
    }

    fn attributes(&self, out: &mut String) {
        let _ = write!(out, "; Path={}; HttpOnly; SameSite=", self.path);
        out.push_str(match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        });
        if self.secure {
            out.push_str("; Secure");
        }
    }

    /// A `Set-Cookie` value that stores the session id.
    pub fn set_cookie(&self, id: &SessionId) -> HeaderValue {
        let mut out = format!("{}={}", self.name, self.sign(id));
        self.attributes(&mut out);
        if let Some(age) = self.max_age {
            let _ = write!(out, "; Max-Age={}", age.as_secs());
        }
        // Built from hex digits and configuration text checked in `new`'s users.
        HeaderValue::from_str(&out)
            .unwrap_or_else(|_| HeaderValue::from_static("session=; Max-Age=0"))
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let mut out = format!("{}=", self.name);
        self.attributes(&mut out);
        out.push_str("; Max-Age=0");
        HeaderValue::from_str(&out)
            .unwrap_or_else(|_| HeaderValue::from_static("session=; Max-Age=0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_ids_verify_and_tampered_ones_do_not() {
        let c = CookieConfig::new(b"k".to_vec());
        let id = SessionId::random();
        let value = c.sign(&id);
        assert_eq!(c.verify(&value), Some(id));
        let mut tampered = value.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            c.verify(std::str::from_utf8(&tampered).expect("ascii")),
            None
        );
        assert_eq!(CookieConfig::new(b"other".to_vec()).verify(&value), None);
        for junk in ["", ".", "abc.def", &id.to_string(), &format!("{id}.zz")] {
            assert_eq!(c.verify(junk), None, "{junk}");
        }
    }

    #[test]
    fn cookies_carry_the_attributes() {
        let mut c = CookieConfig::new(b"k".to_vec());
        let set = c.set_cookie(&SessionId::random());
        let set = set.to_str().expect("ascii");
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=1800",
            "Secure",
        ] {
            assert!(set.contains(attr), "{set}");
        }
        c.secure = false;
        assert!(!c.clear_cookie().to_str().expect("ascii").contains("Secure"));
        assert!(c
            .clear_cookie()
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let c = CookieConfig::new(b"k".to_vec());
        let id = SessionId::random();
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("theme=dark; session=forged"),
        );
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; session={}", c.sign(&id))).expect("ascii"),
        );
        assert_eq!(c.session_id(&h), Some(id));
    }
}
