//! Binary differencing: changed byte runs of each field's encoding.
//!
//! Encodings are canonical (see [`Value`]), so equal fields have equal bytes
//! and a byte comparison finds exactly the fields that changed, whether or
//! not the change went through the tracked handle.
//!
//! Within a changed field the differ looks for the cheapest way to turn the
//! old bytes into the new ones with substitutions plus at most one insertion
//! or deletion (which covers a push, an insert or a remove in a sequence,
//! together with the change of its length in the header). It scans once,
//! in linear time and constant memory, and falls back to shipping the
//! field whole when that is not larger.

use crate::patch::{Edit, Patch};
use crate::value::Value;

/// Unchanged bytes between two runs that are cheaper to resend than to skip
/// (a new run costs at least three bytes of header).
const MERGE_GAP: usize = 3;

/// The recorded encodings of a session's mutable fields, taken by
/// [`Session::binary_benchmark`](crate::Session::binary_benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryBenchmark {
    fingerprint: u64,
    portions: Vec<Vec<u8>>,
}

impl BinaryBenchmark {
    /// A benchmark of the type with this fingerprint: one encoding per
    /// mutable field, in increasing id order.
    pub fn new(fingerprint: u64, portions: Vec<Vec<u8>>) -> Self {
        Self {
            fingerprint,
            portions,
        }
    }

    /// The fingerprint of the type it was taken from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The encoding of the `index`-th mutable field, if this benchmark was
    /// taken from a type with `fingerprint`.
    pub fn portion(&self, fingerprint: u64, index: usize) -> Option<&[u8]> {
        if fingerprint != self.fingerprint {
            return None;
        }
        self.portions.get(index).map(Vec::as_slice)
    }

    /// Total bytes recorded.
    pub fn len(&self) -> usize {
        self.portions.iter().map(Vec::len).sum()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.portions.is_empty()
    }
}

/// The patch of one field, given its recorded encoding (`None` when the
/// benchmark is of another type: the field is then shipped whole) and its
/// current one.
pub fn field_patch(old: Option<&[u8]>, new: &[u8]) -> Option<Patch> {
    match old {
        Some(old) if old == new => None,
        Some(old) => patch(old, new),
        None => Some(whole(new)),
    }
}

fn whole(new: &[u8]) -> Patch {
    // `new` was produced by this process's encoder, so it decodes; a failure
    // here is a bug in the encoder, not something an input can cause.
    Patch::Set(Value::from_bytes(new).expect("a fresh encoding decodes"))
}

/// The cheaper of byte runs and a whole replacement that turns `old` into
/// `new`; `None` when they are equal.
pub(crate) fn patch(old: &[u8], new: &[u8]) -> Option<Patch> {
    if old == new {
        return None;
    }
    let edits = edits(old, new);
    let runs = Patch::Splice(edits);
    Some(if runs.encoded_len() < new.len() {
        runs
    } else {
        whole(new)
    })
}

/// A changed region: `old[old_start..old_end]` becomes
/// `new[new_start..new_end]`.
#[derive(Debug, Clone, Copy)]
struct Region {
    old_start: usize,
    old_end: usize,
    new_start: usize,
    new_end: usize,
}

/// Byte edits turning `old` into `new`.
pub(crate) fn edits(old: &[u8], new: &[u8]) -> Vec<Edit> {
    let mut regions: Vec<Region> = Vec::new();
    let mut add = |r: Region| match regions.last_mut() {
        Some(last) if r.old_start - last.old_end <= MERGE_GAP => {
            last.old_end = r.old_end;
            last.new_end = r.new_end;
        }
        _ => regions.push(r),
    };
    let (lo, ln) = (old.len(), new.len());
    // Positions (in the shorter side) up to `gap` align from the start; the
    // rest align from the end, shifted by the difference in length.
    let gap = best_gap(old, new);
    let shift_old = lo.saturating_sub(ln);
    let shift_new = ln.saturating_sub(lo);
    mismatches(&old[..gap], &new[..gap], |s, e| {
        add(Region {
            old_start: s,
            old_end: e,
            new_start: s,
            new_end: e,
        })
    });
    if lo != ln {
        add(Region {
            old_start: gap,
            old_end: gap + shift_old,
            new_start: gap,
            new_end: gap + shift_new,
        });
    }
    mismatches(&old[gap + shift_old..], &new[gap + shift_new..], |s, e| {
        add(Region {
            old_start: gap + shift_old + s,
            old_end: gap + shift_old + e,
            new_start: gap + shift_new + s,
            new_end: gap + shift_new + e,
        })
    });
    let mut pos = 0;
    regions
        .into_iter()
        .map(|r| {
            let e = Edit {
                skip: (r.old_start - pos) as u64,
                delete: (r.old_end - r.old_start) as u64,
                insert: new[r.new_start..r.new_end].to_vec(),
            };
            pos = r.old_end;
            e
        })
        .collect()
}

/// Where to put the one insertion or deletion: the split point `p` (in the
/// shorter input) minimising the differing bytes of `a[..p]` against
/// `b[..p]` plus those of the two tails aligned from the end.
fn best_gap(old: &[u8], new: &[u8]) -> usize {
    let (short, long) = if old.len() <= new.len() {
        (old, new)
    } else {
        (new, old)
    };
    let shift = long.len() - short.len();
    if shift == 0 {
        return short.len();
    }
    // cost(0) = all tail mismatches; moving p past i trades the tail
    // comparison of byte i for its head comparison.
    let mut cost: usize = (0..short.len())
        .filter(|&i| short[i] != long[i + shift])
        .count();
    let (mut best, mut best_cost) = (0, cost);
    for i in 0..short.len() {
        cost = cost + usize::from(short[i] != long[i]) - usize::from(short[i] != long[i + shift]);
        if cost < best_cost {
            best = i + 1;
            best_cost = cost;
        }
    }
    best
}

/// Calls `f(start, end)` for each maximal run where `a` and `b` (of equal
/// length) differ. Equal 64-byte blocks are skipped with one comparison.
fn mismatches(a: &[u8], b: &[u8], mut f: impl FnMut(usize, usize)) {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut run: Option<usize> = None;
    while i < n {
        if run.is_none() && i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
            i += BLOCK;
            continue;
        }
        match (a[i] != b[i], run) {
            (true, None) => run = Some(i),
            (false, Some(s)) => {
                f(s, i);
                run = None;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(s) = run {
        f(s, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::splice;

    fn check(old: &[u8], new: &[u8]) -> Vec<Edit> {
        let e = edits(old, new);
        assert_eq!(
            splice(old, &e).as_deref(),
            Ok(new),
            "{old:?} -> {new:?}: {e:?}"
        );
        e
    }

    #[test]
    fn overwrites_become_one_run_each() {
        let old = vec![0u8; 4096];
        let mut new = old.clone();
        new[1000..1064].fill(7);
        let e = check(&old, &new);
        assert_eq!(
            e,
            vec![Edit {
                skip: 1000,
                delete: 64,
                insert: vec![7; 64]
            }]
        );
    }

    #[test]
    fn close_runs_merge_and_far_ones_do_not() {
        let old = vec![0u8; 100];
        let mut new = old.clone();
        new[10] = 1;
        new[12] = 1;
        new[50] = 1;
        assert_eq!(check(&old, &new).len(), 2);
    }

    #[test]
    fn an_insertion_in_the_middle_with_a_header_change_is_two_small_runs() {
        let old: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let mut new = old.clone();
        new[0] = 99;
        new.splice(120..120, [1, 2, 3]);
        let e = check(&old, &new);
        assert_eq!(e.len(), 2, "{e:?}");
        let mut removed = old.clone();
        removed.drain(40..45);
        removed[1] = 0;
        assert_eq!(check(&old, &removed).len(), 2);
    }

    #[test]
    fn edge_cases_round_trip() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b"abc"),
            (b"abc", b""),
            (b"abc", b"abc"),
            (b"abc", b"xbz"),
            (b"aaaa", b"aa"),
            (b"ab", b"ba"),
        ];
        for (a, b) in cases {
            check(a, b);
        }
    }

    #[test]
    fn a_rewrite_falls_back_to_the_whole_value() {
        let old = Value::Leaf(vec![1; 10]).to_bytes();
        let new = Value::Leaf(vec![2; 10]).to_bytes();
        assert_eq!(
            patch(&old, &new),
            Some(Patch::Set(Value::Leaf(vec![2; 10])))
        );
        assert_eq!(patch(&old, &old), None);
    }
}
