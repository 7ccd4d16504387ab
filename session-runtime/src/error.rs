//! Errors of decoding and applying deltas.

use std::fmt;

/// Bytes that are not a well-formed value, patch or delta.
///
/// Decoding never panics and never allocates more than the input could
/// justify; any of these errors leaves the caller's state untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a node.
    #[error("input truncated at byte {offset}")]
    Truncated {
        /// Where more input was needed.
        offset: usize,
    },
    /// A varint was overlong, too large for its type, or unterminated.
    #[error("malformed varint at byte {offset}")]
    BadVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A header named a kind that is not allowed at that place.
    #[error("unexpected node kind {kind} at byte {offset} (expected {expected})")]
    BadKind {
        /// The kind found.
        kind: u8,
        /// Where the header is.
        offset: usize,
        /// What the reader expected there.
        expected: &'static str,
    },
    /// Bytes were left after a complete node.
    #[error("trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Where the unexpected bytes start.
        offset: usize,
    },
    /// Nesting deeper than the reader accepts.
    #[error("nesting deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Keys of a map, or field ids of a record, are not strictly increasing.
    #[error("entries out of order or duplicated at byte {offset}")]
    Unordered {
        /// Where the offending entry starts.
        offset: usize,
    },
    /// A field id does not fit in 16 bits.
    #[error("field id {id} out of range at byte {offset}")]
    BadFieldId {
        /// The id read.
        id: u64,
        /// Where it is.
        offset: usize,
    },
    /// A leaf's bytes are not a valid encoding of the field's type.
    #[error("leaf value does not decode: {0}")]
    Leaf(String),
}

/// A delta that cannot be applied to a value.
///
/// Apply is all-or-nothing: when this is returned the value is exactly as it
/// was before the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    path: Vec<PathStep>,
    kind: ApplyErrorKind,
}

/// One step from the root of a session to the node an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathStep {
    /// A field, by its stable id.
    Field(u16),
    /// An element of a sequence, by index.
    Index(u64),
    /// An entry of a map or set, by its encoded key.
    Key(Vec<u8>),
    /// The content of an `Option` that is `Some`.
    Some,
}

/// What went wrong while applying a delta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyErrorKind {
    /// The delta names a field the type does not have.
    #[error("unknown field id {id}")]
    UnknownField {
        /// The id in the delta.
        id: u16,
    },
    /// The delta patches a field declared `#[immutable]`.
    #[error("field id {id} is immutable")]
    ImmutableField {
        /// The id in the delta.
        id: u16,
    },
    /// A sequence operation addresses an index past the end.
    #[error("index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// The index (or end of range) addressed.
        index: u64,
        /// The length of the sequence at that point.
        len: u64,
    },
    /// A map patch or removal names a key that is not present.
    #[error("key not present")]
    MissingKey,
    /// A patch for one shape of node was applied to another.
    #[error("expected {expected}, found {found}")]
    Shape {
        /// The shape the patch needs.
        expected: &'static str,
        /// The shape of the node it met.
        found: &'static str,
    },
    /// A record value lacks a field the type requires.
    #[error("missing field id {id}")]
    MissingField {
        /// The id of the missing field.
        id: u16,
    },
    /// Byte runs that do not fit the encoding they patch.
    #[error("byte run out of range: ends at {end}, encoding is {len} bytes")]
    SpliceOutOfRange {
        /// Where the run ends.
        end: u64,
        /// Length of the encoding.
        len: u64,
    },
    /// A set element is inserted twice, or an element is patched twice.
    #[error("conflicting operations in one patch: {0}")]
    Conflict(&'static str),
    /// Bytes inside the delta that do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ApplyError {
    /// An error at the node the patch was applied to.
    pub fn new(kind: ApplyErrorKind) -> Self {
        Self {
            path: Vec::new(),
            kind,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ApplyErrorKind {
        &self.kind
    }

    /// Steps from the root of the session to the offending node.
    pub fn path(&self) -> &[PathStep] {
        &self.path
    }

    /// Adds the step through which the failing node was reached (called while
    /// unwinding, so steps are pushed innermost first).
    pub fn within(mut self, step: PathStep) -> Self {
        self.path.insert(0, step);
        self
    }

    pub(crate) fn shape(expected: &'static str, found: &'static str) -> Self {
        Self::new(ApplyErrorKind::Shape { expected, found })
    }
}

impl From<DecodeError> for ApplyError {
    fn from(e: DecodeError) -> Self {
        Self::new(ApplyErrorKind::Decode(e))
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return write!(f, "cannot apply delta: {}", self.kind);
        }
        f.write_str("cannot apply delta at ")?;
        for (i, step) in self.path.iter().enumerate() {
            if i > 0 {
                f.write_str(" / ")?;
            }
            match step {
                PathStep::Field(id) => write!(f, "field {id}")?,
                PathStep::Index(i) => write!(f, "index {i}")?,
                PathStep::Key(k) => write!(f, "key {k:02x?}")?,
                PathStep::Some => f.write_str("some")?,
            }
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ApplyErrorKind::Decode(e) => Some(e),
            _ => None,
        }
    }
}
