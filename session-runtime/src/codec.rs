//! The only module that calls bincode.
//!
//! Leaves of the session tree (opaque field values, map keys) are encoded
//! with bincode 2 in serde mode, with one fixed configuration: little-endian,
//! variable-length integers, and a decode limit so that a corrupt length
//! prefix cannot make the decoder allocate without bound. Swapping the
//! serialization library means changing this file only.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DecodeError;

/// Largest leaf the decoder will materialise.
pub const MAX_LEAF_BYTES: usize = 256 << 20;

const CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_LEAF_BYTES>> =
    bincode::config::standard().with_limit::<MAX_LEAF_BYTES>();

/// Appends the encoding of `value` to `out`.
///
/// # Panics
///
/// If the value's `Serialize` implementation fails, which for bincode means
/// the type cannot be encoded at all (for example a map serialized without a
/// known length, as `#[serde(flatten)]` does). That is a property of the
/// application's type, found by its first test, not of any input.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    if let Err(e) = bincode::serde::encode_into_std_write(value, out, CONFIG) {
        panic!(
            "session value of type `{}` cannot be encoded: {e}",
            std::any::type_name::<T>()
        );
    }
}

/// The encoding of `value`. See [`encode_into`] for the panics.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Decodes a value that must use every byte of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(DecodeError::TrailingBytes { offset: used }),
        Err(e) => Err(DecodeError::Leaf(format!(
            "not a valid `{}`: {e}",
            std::any::type_name::<T>()
        ))),
    }
}

/// Decodes a value that must use every byte of `bytes`, and whose encoding
/// they must be: bincode also accepts other forms (an integer in a wider
/// varint than it needs), which a store node, keeping the bytes, and an
/// application server, keeping the decoded value, would then encode
/// differently.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: T = decode(bytes)?;
    if encode(&value) != bytes {
        return Err(DecodeError::Leaf(format!(
            "not the canonical encoding of a `{}`",
            std::any::type_name::<T>()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let v = (7u32, String::from("cart"), vec![1u64, 2]);
        let bytes = encode(&v);
        assert_eq!(decode::<(u32, String, Vec<u64>)>(&bytes), Ok(v));
        assert!(decode::<(u32, String, Vec<u64>)>(&bytes[..bytes.len() - 1]).is_err());
        assert!(matches!(
            decode::<u8>(&[1, 2]),
            Err(DecodeError::TrailingBytes { offset: 1 })
        ));
        // A length prefix claiming far more than the input is an error, not an allocation.
        assert!(
            decode::<Vec<u8>>(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err()
        );
    }

    #[test]
    fn canonical_decoding_rejects_wider_forms() {
        // 1 as a u32 is one byte; bincode also reads it behind the u16 marker.
        assert_eq!(decode::<u32>(&[251, 1, 0]), Ok(1));
        assert!(decode_canonical::<u32>(&[251, 1, 0]).is_err());
        assert_eq!(decode_canonical::<u32>(&[1]), Ok(1));
    }
}
