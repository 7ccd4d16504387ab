//! `Option<T>`: set, clear, or patch the content.

use super::{replacement, Strategy};
use crate::error::{ApplyError, PathStep};
use crate::patch::Patch;
use crate::value::Value;
use crate::wire::{self, kind};

/// The strategy of an `Option` whose content uses strategy `S`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionOf<S>(S);

impl<S> OptionOf<S> {
    /// The strategy for options of values handled by `inner`.
    pub const fn new(inner: S) -> Self {
        Self(inner)
    }
}

/// A checked option patch.
#[derive(Debug)]
pub enum OptionPrepared<T, P> {
    /// Replace the whole option.
    Replace(Option<T>),
    /// Patch the content.
    Inner(P),
}

impl<T, S: Strategy<T>> Strategy<Option<T>> for OptionOf<S> {
    type Prepared = OptionPrepared<T, S::Prepared>;

    fn shape(self) -> u64 {
        crate::schema::shape("option", &[self.0.shape()])
    }

    fn to_value(self, value: &Option<T>) -> Value {
        Value::Option(value.as_ref().map(|v| Box::new(self.0.to_value(v))))
    }

    fn decode(self, value: &Value) -> Result<Option<T>, ApplyError> {
        match value {
            Value::Option(None) => Ok(None),
            Value::Option(Some(v)) => self
                .0
                .decode(v)
                .map(Some)
                .map_err(|e| e.within(PathStep::Some)),
            other => Err(ApplyError::shape("option", other.shape())),
        }
    }

    fn encode(self, value: &Option<T>, out: &mut Vec<u8>) {
        match value {
            None => wire::put_header(out, kind::NONE, 0),
            Some(v) => {
                wire::put_header(out, kind::SOME, 0);
                self.0.encode(v, out);
            }
        }
    }

    fn min_len(self, value: &Option<T>) -> usize {
        1 + value.as_ref().map_or(0, |v| self.0.min_len(v))
    }

    fn eq(self, a: &Option<T>, b: &Option<T>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => self.0.eq(a, b),
            _ => false,
        }
    }

    fn diff(self, current: &Option<T>, benchmark: &Option<T>) -> Option<Patch> {
        match (current, benchmark) {
            (None, None) => None,
            (Some(c), Some(b)) => match self.0.diff(c, b)? {
                // Replacing the content costs one byte less as a whole value.
                Patch::Set(v) => Some(Patch::Set(Value::Option(Some(Box::new(v))))),
                p => Some(Patch::Some(Box::new(p))),
            },
            _ => Some(Patch::Set(self.to_value(current))),
        }
    }

    fn prepare(self, target: &Option<T>, patch: &Patch) -> Result<Self::Prepared, ApplyError> {
        if let Some(whole) = replacement(self, target, patch) {
            return whole.map(OptionPrepared::Replace);
        }
        match (patch, target) {
            (Patch::Some(p), Some(v)) => self
                .0
                .prepare(v, p)
                .map(OptionPrepared::Inner)
                .map_err(|e| e.within(PathStep::Some)),
            (Patch::Some(_), None) => Err(ApplyError::shape("some", "none")),
            _ => Err(ApplyError::shape("option", "other patch")),
        }
    }

    fn commit(self, target: &mut Option<T>, prepared: Self::Prepared) {
        match (prepared, target) {
            (OptionPrepared::Replace(v), target) => *target = v,
            (OptionPrepared::Inner(p), Some(v)) => self.0.commit(v, p),
            (OptionPrepared::Inner(_), None) => {}
        }
    }
}
