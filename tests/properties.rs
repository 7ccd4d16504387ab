//! Property tests of the three change detectors, the wire format and the
//! tree, over one session type that uses every supported kind of field.
//!
//! Each case builds a random session, runs a random sequence of edits through
//! the tracked handle, and checks the invariants every detector must keep:
//! its delta turns the benchmark into the current value, on the typed value
//! and on the schema-agnostic tree alike; it survives the wire; no field
//! patch is larger than shipping the field; and damaged or misaddressed
//! deltas are rejected (or applied whole), never half-applied, never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use proptest::collection::{btree_map, btree_set, hash_map, hash_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};
use session_runtime::{codec, Delta, Patch, SeqOp, Session, Tracked, Value};

/// An opaque element: replaced whole when it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price: u64,
}

#[derive(Session, Clone, Debug, PartialEq)]
struct Nested {
    #[immutable]
    created: u64,
    tags: Vec<String>,
    counts: HashMap<String, u32>,
}

#[derive(Session, Clone, Debug, PartialEq)]
struct Everything {
    #[immutable]
    user_id: u64,
    name: String,
    visits: u32,
    cart: Vec<Item>,
    blob: Vec<u8>,
    recent: VecDeque<u32>,
    counters: HashMap<String, u32>,
    catalog: BTreeMap<u32, Item>,
    seen: HashSet<u32>,
    labels: BTreeSet<String>,
    note: Option<String>,
    extra: Option<Nested>,
    profile: Nested,
    history: Vec<Nested>,
    by_name: HashMap<String, Nested>,
    #[session(id = 40)]
    pinned: u64,
}

/// Field ids, as the derive assigns them (declaration order, one pinned).
const CART: u16 = 3;
const RECENT: u16 = 5;
const HISTORY: u16 = 13;

// ---------------------------------------------------------------------------
// Generators. Small alphabets and ranges make collisions (equal elements,
// re-inserted keys, writes of an equal value) common.

fn word() -> impl Strategy<Value = String> {
    "[a-d]{0,4}"
}

fn number() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0u32..4, 1 => any::<u32>()]
}

fn item() -> impl Strategy<Value = Item> {
    (word(), number(), prop_oneof![0u64..3, any::<u64>()]).prop_map(|(sku, qty, price)| Item {
        sku,
        qty,
        price,
    })
}

fn nested() -> impl Strategy<Value = Nested> {
    (0u64..3, vec(word(), 0..4), hash_map(word(), number(), 0..4)).prop_map(
        |(created, tags, counts)| Nested {
            created,
            tags,
            counts,
        },
    )
}

fn everything() -> impl Strategy<Value = Everything> {
    let scalars_and_sequences = (
        any::<u64>(),
        word(),
        number(),
        vec(item(), 0..6),
        vec(any::<u8>(), 0..160),
        vec(number(), 0..6),
        hash_map(word(), number(), 0..5),
        btree_map(0u32..8, item(), 0..4),
    );
    let sets_options_and_nesting = (
        hash_set(0u32..12, 0..5),
        btree_set(word(), 0..5),
        option::of(word()),
        option::of(nested()),
        nested(),
        vec(nested(), 0..4),
        hash_map(word(), nested(), 0..3),
        any::<u64>(),
    );
    (scalars_and_sequences, sets_options_and_nesting).prop_map(
        |(
            (user_id, name, visits, cart, blob, recent, counters, catalog),
            (seen, labels, note, extra, profile, history, by_name, pinned),
        )| Everything {
            user_id,
            name,
            visits,
            cart,
            blob,
            recent: recent.into(),
            counters,
            catalog,
            seen,
            labels,
            note,
            extra,
            profile,
            history,
            by_name,
            pinned,
        },
    )
}

/// One write through the tracked handle. Indices are resolved against the
/// collection's length when the edit runs.
#[derive(Clone, Debug)]
enum Op {
    SetName(String),
    AddVisits(u32),
    CartPush(Item),
    CartInsert(Index, Item),
    CartRemove(Index),
    CartSet(Index, Item),
    CartQty(Index, u32),
    CartTruncate(Index),
    BlobOverwrite(Index, Vec<u8>),
    BlobInsert(Index, Vec<u8>),
    BlobTruncate(Index),
    RecentPushBack(u32),
    RecentPushFront(u32),
    RecentPopFront,
    RecentSet(Index, u32),
    CounterPut(String, u32),
    CounterRemove(Index),
    CounterBump(Index),
    CatalogPut(u32, Item),
    CatalogRemove(Index),
    CatalogQty(Index, u32),
    SeenInsert(u32),
    SeenRemove(Index),
    LabelInsert(String),
    LabelRemove(Index),
    NoteSet(String),
    NoteClear,
    NoteAppend(String),
    ExtraSet(Nested),
    ExtraClear,
    ExtraTag(String),
    ProfileTag(String),
    ProfileUntag(Index),
    ProfileCount(String, u32),
    /// Writes the nested struct's immutable field through the outer proxy.
    ProfileCreated(u64),
    HistoryPush(Nested),
    HistoryRemove(Index),
    HistorySet(Index, Nested),
    HistoryTag(Index, String),
    ByNamePut(String, Nested),
    ByNameRemove(Index),
    ByNameCount(Index, String, u32),
    Pinned(u64),
    /// Runs an edit, then writes every mutable field back to its value from
    /// before the edit.
    Undone(Box<Op>),
}

fn simple_op() -> BoxedStrategy<Op> {
    prop_oneof![
        word().prop_map(Op::SetName),
        number().prop_map(Op::AddVisits),
        item().prop_map(Op::CartPush),
        (any::<Index>(), item()).prop_map(|(i, x)| Op::CartInsert(i, x)),
        any::<Index>().prop_map(Op::CartRemove),
        (any::<Index>(), item()).prop_map(|(i, x)| Op::CartSet(i, x)),
        (any::<Index>(), number()).prop_map(|(i, q)| Op::CartQty(i, q)),
        any::<Index>().prop_map(Op::CartTruncate),
        (any::<Index>(), vec(any::<u8>(), 0..40)).prop_map(|(i, b)| Op::BlobOverwrite(i, b)),
        (any::<Index>(), vec(any::<u8>(), 0..40)).prop_map(|(i, b)| Op::BlobInsert(i, b)),
        any::<Index>().prop_map(Op::BlobTruncate),
        number().prop_map(Op::RecentPushBack),
        number().prop_map(Op::RecentPushFront),
        Just(Op::RecentPopFront),
        (any::<Index>(), number()).prop_map(|(i, n)| Op::RecentSet(i, n)),
        (word(), number()).prop_map(|(k, n)| Op::CounterPut(k, n)),
        any::<Index>().prop_map(Op::CounterRemove),
        any::<Index>().prop_map(Op::CounterBump),
        (0u32..8, item()).prop_map(|(k, x)| Op::CatalogPut(k, x)),
        any::<Index>().prop_map(Op::CatalogRemove),
        (any::<Index>(), number()).prop_map(|(i, q)| Op::CatalogQty(i, q)),
        (0u32..12).prop_map(Op::SeenInsert),
        any::<Index>().prop_map(Op::SeenRemove),
        word().prop_map(Op::LabelInsert),
        any::<Index>().prop_map(Op::LabelRemove),
        word().prop_map(Op::NoteSet),
        Just(Op::NoteClear),
        word().prop_map(Op::NoteAppend),
        nested().prop_map(Op::ExtraSet),
        Just(Op::ExtraClear),
        word().prop_map(Op::ExtraTag),
        word().prop_map(Op::ProfileTag),
        any::<Index>().prop_map(Op::ProfileUntag),
        (word(), number()).prop_map(|(k, n)| Op::ProfileCount(k, n)),
        (0u64..3).prop_map(Op::ProfileCreated),
        nested().prop_map(Op::HistoryPush),
        any::<Index>().prop_map(Op::HistoryRemove),
        (any::<Index>(), nested()).prop_map(|(i, n)| Op::HistorySet(i, n)),
        (any::<Index>(), word()).prop_map(|(i, t)| Op::HistoryTag(i, t)),
        (word(), nested()).prop_map(|(k, n)| Op::ByNamePut(k, n)),
        any::<Index>().prop_map(Op::ByNameRemove),
        (any::<Index>(), word(), number()).prop_map(|(i, k, n)| Op::ByNameCount(i, k, n)),
        prop_oneof![0u64..3, any::<u64>()].prop_map(Op::Pinned),
    ]
    .boxed()
}

fn op() -> impl Strategy<Value = Op> {
    let simple = simple_op();
    prop_oneof![
        12 => simple.clone(),
        1 => simple.prop_map(|o| Op::Undone(Box::new(o))),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 0..10)
}

/// The `i`-th key in sorted order, so that a case replays identically
/// whatever the hash maps' iteration order.
fn nth_key<K: Ord + Clone>(keys: impl Iterator<Item = K>, i: &Index) -> Option<K> {
    let mut keys: Vec<K> = keys.collect();
    if keys.is_empty() {
        return None;
    }
    keys.sort();
    let at = i.index(keys.len());
    Some(keys.swap_remove(at))
}

fn run(t: &mut Tracked<Everything>, op: &Op) {
    match op.clone() {
        Op::SetName(s) => *t.edit().name() = s,
        Op::AddVisits(n) => {
            let v = t.edit().visits();
            *v = v.wrapping_add(n);
        }
        Op::CartPush(x) => t.edit().cart().push(x),
        Op::CartInsert(i, x) => {
            let c = t.edit().cart();
            c.insert(i.index(c.len() + 1), x);
        }
        Op::CartRemove(i) => {
            let c = t.edit().cart();
            if !c.is_empty() {
                c.remove(i.index(c.len()));
            }
        }
        Op::CartSet(i, x) => {
            let c = t.edit().cart();
            if !c.is_empty() {
                let at = i.index(c.len());
                c[at] = x;
            }
        }
        Op::CartQty(i, q) => {
            let c = t.edit().cart();
            if !c.is_empty() {
                let at = i.index(c.len());
                c[at].qty = q;
            }
        }
        Op::CartTruncate(i) => {
            let c = t.edit().cart();
            c.truncate(i.index(c.len() + 1));
        }
        Op::BlobOverwrite(i, bytes) => {
            let b = t.edit().blob();
            let start = i.index(b.len() + 1);
            let end = (start + bytes.len()).min(b.len());
            b[start..end].copy_from_slice(&bytes[..end - start]);
        }
        Op::BlobInsert(i, bytes) => {
            let b = t.edit().blob();
            let at = i.index(b.len() + 1);
            b.splice(at..at, bytes);
        }
        Op::BlobTruncate(i) => {
            let b = t.edit().blob();
            b.truncate(i.index(b.len() + 1));
        }
        Op::RecentPushBack(n) => t.edit().recent().push_back(n),
        Op::RecentPushFront(n) => t.edit().recent().push_front(n),
        Op::RecentPopFront => {
            t.edit().recent().pop_front();
        }
        Op::RecentSet(i, n) => {
            let r = t.edit().recent();
            if !r.is_empty() {
                let at = i.index(r.len());
                r[at] = n;
            }
        }
        Op::CounterPut(k, n) => {
            t.edit().counters().insert(k, n);
        }
        Op::CounterRemove(i) => {
            if let Some(k) = nth_key(t.counters.keys().cloned(), &i) {
                t.edit().counters().remove(&k);
            }
        }
        Op::CounterBump(i) => {
            if let Some(k) = nth_key(t.counters.keys().cloned(), &i) {
                if let Some(v) = t.edit().counters().get_mut(&k) {
                    *v = v.wrapping_add(1);
                }
            }
        }
        Op::CatalogPut(k, x) => {
            t.edit().catalog().insert(k, x);
        }
        Op::CatalogRemove(i) => {
            if let Some(k) = nth_key(t.catalog.keys().copied(), &i) {
                t.edit().catalog().remove(&k);
            }
        }
        Op::CatalogQty(i, q) => {
            if let Some(k) = nth_key(t.catalog.keys().copied(), &i) {
                if let Some(x) = t.edit().catalog().get_mut(&k) {
                    x.qty = q;
                }
            }
        }
        Op::SeenInsert(n) => {
            t.edit().seen().insert(n);
        }
        Op::SeenRemove(i) => {
            if let Some(n) = nth_key(t.seen.iter().copied(), &i) {
                t.edit().seen().remove(&n);
            }
        }
        Op::LabelInsert(s) => {
            t.edit().labels().insert(s);
        }
        Op::LabelRemove(i) => {
            if let Some(s) = nth_key(t.labels.iter().cloned(), &i) {
                t.edit().labels().remove(&s);
            }
        }
        Op::NoteSet(s) => *t.edit().note() = Some(s),
        Op::NoteClear => *t.edit().note() = None,
        Op::NoteAppend(s) => {
            if let Some(note) = t.edit().note() {
                note.push_str(&s);
            }
        }
        Op::ExtraSet(n) => *t.edit().extra() = Some(n),
        Op::ExtraClear => *t.edit().extra() = None,
        Op::ExtraTag(s) => {
            if let Some(n) = t.edit().extra() {
                n.tags.push(s);
            }
        }
        Op::ProfileTag(s) => t.edit().profile().tags.push(s),
        Op::ProfileUntag(i) => {
            let tags = &mut t.edit().profile().tags;
            if !tags.is_empty() {
                tags.remove(i.index(tags.len()));
            }
        }
        Op::ProfileCount(k, n) => {
            t.edit().profile().counts.insert(k, n);
        }
        Op::ProfileCreated(c) => t.edit().profile().created = c,
        Op::HistoryPush(n) => t.edit().history().push(n),
        Op::HistoryRemove(i) => {
            let h = t.edit().history();
            if !h.is_empty() {
                h.remove(i.index(h.len()));
            }
        }
        Op::HistorySet(i, n) => {
            let h = t.edit().history();
            if !h.is_empty() {
                let at = i.index(h.len());
                h[at] = n;
            }
        }
        Op::HistoryTag(i, s) => {
            let h = t.edit().history();
            if !h.is_empty() {
                let at = i.index(h.len());
                h[at].tags.push(s);
            }
        }
        Op::ByNamePut(k, n) => {
            t.edit().by_name().insert(k, n);
        }
        Op::ByNameRemove(i) => {
            if let Some(k) = nth_key(t.by_name.keys().cloned(), &i) {
                t.edit().by_name().remove(&k);
            }
        }
        Op::ByNameCount(i, k, n) => {
            if let Some(key) = nth_key(t.by_name.keys().cloned(), &i) {
                if let Some(v) = t.edit().by_name().get_mut(&key) {
                    v.counts.insert(k, n);
                }
            }
        }
        Op::Pinned(n) => *t.edit().pinned() = n,
        Op::Undone(inner) => {
            let before = (**t).clone();
            run(t, &inner);
            restore(t, before);
        }
    }
}

/// Writes every mutable field of `t` back to its value in `old`, through the
/// tracked handle (so every field is dirty afterwards).
fn restore(t: &mut Tracked<Everything>, old: Everything) {
    let Everything {
        user_id: _,
        name,
        visits,
        cart,
        blob,
        recent,
        counters,
        catalog,
        seen,
        labels,
        note,
        extra,
        profile,
        history,
        by_name,
        pinned,
    } = old;
    *t.edit().name() = name;
    *t.edit().visits() = visits;
    *t.edit().cart() = cart;
    *t.edit().blob() = blob;
    *t.edit().recent() = recent;
    *t.edit().counters() = counters;
    *t.edit().catalog() = catalog;
    *t.edit().seen() = seen;
    *t.edit().labels() = labels;
    *t.edit().note() = note;
    *t.edit().extra() = extra;
    *t.edit().profile() = profile;
    *t.edit().history() = history;
    *t.edit().by_name() = by_name;
    *t.edit().pinned() = pinned;
}

/// The benchmark, the edited value, and the deltas of the three detectors:
/// `[take_delta, diff, binary_diff]`.
fn edited(bench: &Everything, ops: &[Op]) -> (Everything, [Delta; 3]) {
    let binary_bench = bench.binary_benchmark();
    let mut t = Tracked::new(bench.clone());
    for op in ops {
        run(&mut t, op);
    }
    let tracked = t.take_delta();
    let current = t.into_inner();
    let graph = current.diff(bench);
    let binary = current.binary_diff(&binary_bench);
    (current, [tracked, graph, binary])
}

const DETECTORS: [&str; 3] = ["take_delta", "diff", "binary_diff"];

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Every invariant a detector's delta must keep for `bench` -> `current`.
fn check_delta(
    detector: &str,
    delta: &Delta,
    bench: &Everything,
    current: &Everything,
) -> Result<(), TestCaseError> {
    // The wire.
    let bytes = delta.to_bytes();
    prop_assert_eq!(delta.encoded_len(), bytes.len(), "{}", detector);
    prop_assert_eq!(Delta::from_bytes(&bytes), Ok(delta.clone()), "{}", detector);

    // The typed value.
    let mut typed = bench.clone();
    typed
        .apply(delta)
        .map_err(|e| fail(format!("{detector}: typed apply failed: {e}")))?;
    prop_assert_eq!(&typed, current, "{}", detector);

    // The tree ends with the same bytes.
    let mut tree = bench.to_value();
    tree.apply_fields(delta.fields())
        .map_err(|e| fail(format!("{detector}: tree apply failed: {e}")))?;
    prop_assert_eq!(tree.to_bytes(), current.to_bytes(), "{}", detector);

    // Only mutable fields, and no patch larger than its field shipped whole.
    let Value::Record(fields) = current.to_value() else {
        return Err(fail("a session is a record".into()));
    };
    let mutable = Everything::schema().mutable_ids();
    for (id, patch) in delta.fields() {
        prop_assert!(mutable.contains(id), "{}: patch of field {}", detector, id);
        let whole = fields
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.encoded_len())
            .ok_or_else(|| fail(format!("{detector}: field {id} is not in the tree")))?;
        prop_assert!(
            patch.encoded_len() <= whole + 8,
            "{}: patch of field {} is {} bytes, the field {}: {:?}",
            detector,
            id,
            patch.encoded_len(),
            whole,
            patch
        );
    }
    Ok(())
}

/// A delta that may be damaged or meant for another value: decoding and
/// applying it must either fail and leave the value as it was, or succeed;
/// never panic. When the typed value accepts it, the tree does too and ends
/// with the same bytes.
fn check_untrusted(bytes: &[u8], target: &Everything) -> Result<(), TestCaseError> {
    let Ok(delta) = Delta::from_bytes(bytes) else {
        return Ok(());
    };
    // What decodes is canonical: it encodes back to the same bytes.
    prop_assert_eq!(delta.to_bytes(), bytes);
    check_untrusted_delta(&delta, target)
}

fn check_untrusted_delta(delta: &Delta, target: &Everything) -> Result<(), TestCaseError> {
    let mut typed = target.clone();
    let typed_ok = match typed.apply(delta) {
        Ok(()) => {
            // Whatever was accepted is a well-formed session.
            prop_assert_eq!(Everything::from_bytes(&typed.to_bytes()), Ok(typed.clone()));
            true
        }
        Err(_) => {
            prop_assert_eq!(&typed, target, "a failed apply changed the value");
            false
        }
    };

    let before = target.to_value();
    let mut tree = before.clone();
    match tree.apply_fields(delta.fields()) {
        Ok(()) => {
            // The tree stays canonical.
            prop_assert_eq!(Value::from_bytes(&tree.to_bytes()), Ok(tree.clone()));
            if typed_ok {
                prop_assert_eq!(tree.to_bytes(), typed.to_bytes());
            }
        }
        Err(e) => {
            prop_assert!(
                !typed_ok,
                "the typed value accepted what the tree rejected: {e}"
            );
            prop_assert_eq!(&tree, &before, "a failed tree apply changed the tree");
        }
    }
    Ok(())
}

/// Damage done to a delta's bytes.
#[derive(Clone, Debug)]
enum Damage {
    Flip(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Damage::Flip(i, m)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => any::<Index>().prop_map(Damage::Remove),
        1 => any::<Index>().prop_map(Damage::Truncate),
    ]
}

fn damaged(bytes: &[u8], damage: &[Damage]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for d in damage {
        match d {
            Damage::Flip(i, mask) if !out.is_empty() => {
                let at = i.index(out.len());
                out[at] ^= mask;
            }
            Damage::Insert(i, b) => {
                let at = i.index(out.len() + 1);
                out.insert(at, *b);
            }
            Damage::Remove(i) if !out.is_empty() => {
                out.remove(i.index(out.len()));
            }
            Damage::Truncate(i) => out.truncate(i.index(out.len() + 1)),
            Damage::Flip(..) | Damage::Remove(_) => {}
        }
    }
    out
}

/// A sequence operation with small, often out-of-range, indices.
fn seq_op(element: BoxedStrategy<Value>) -> impl Strategy<Value = SeqOp> {
    prop_oneof![
        (0u64..8, element.clone()).prop_map(|(index, v)| SeqOp::Set {
            index,
            patch: Patch::Set(v),
        }),
        (0u64..8, vec(element.clone(), 0..3))
            .prop_map(|(index, values)| SeqOp::Insert { index, values }),
        (0u64..8, 0u64..4).prop_map(|(index, count)| SeqOp::Remove { index, count }),
        vec(element, 0..3).prop_map(SeqOp::Push),
    ]
}

/// A field id and a hand-made sequence patch for it, in an order no differ
/// emits (a set after an insert or a push, a remove past the end...).
fn seq_patch() -> impl Strategy<Value = (u16, Patch)> {
    let cart = item().prop_map(|x| Value::Leaf(codec::encode(&x))).boxed();
    let recent = number()
        .prop_map(|n| Value::Leaf(codec::encode(&n)))
        .boxed();
    let history = nested().prop_map(|n| n.to_value()).boxed();
    prop_oneof![
        vec(seq_op(cart), 1..5).prop_map(|ops| (CART, Patch::Seq(ops))),
        vec(seq_op(recent), 1..5).prop_map(|ops| (RECENT, Patch::Seq(ops))),
        vec(seq_op(history), 1..5).prop_map(|ops| (HISTORY, Patch::Seq(ops))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Each detector's delta turns the benchmark into the current value, on
    /// the typed value and on the tree; it round-trips through bytes; no
    /// field patch is larger than the field + 8 bytes.
    #[test]
    fn every_detector_turns_the_benchmark_into_the_current_value(
        bench in everything(),
        ops in ops(),
    ) {
        let (current, deltas) = edited(&bench, &ops);
        for (detector, delta) in DETECTORS.iter().zip(&deltas) {
            check_delta(detector, delta, &bench, &current)?;
        }
    }

    /// Dirty tracking and graph differencing find the same changes: their
    /// deltas are equal, and apply to the same value as the binary one.
    #[test]
    fn the_detectors_agree(bench in everything(), ops in ops()) {
        let (current, [tracked, graph, binary]) = edited(&bench, &ops);
        prop_assert_eq!(&tracked, &graph);
        let mut from_tracked = bench.clone();
        let mut from_graph = bench.clone();
        let mut from_binary = bench.clone();
        from_tracked.apply(&tracked).map_err(|e| fail(e.to_string()))?;
        from_graph.apply(&graph).map_err(|e| fail(e.to_string()))?;
        from_binary.apply(&binary).map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(&from_tracked, &from_graph);
        prop_assert_eq!(&from_graph, &from_binary);
        prop_assert_eq!(&from_binary, &current);
        // The three find changes in the same fields.
        let ids = |d: &Delta| d.field_ids().collect::<Vec<_>>();
        prop_assert_eq!(ids(&graph), ids(&binary));
    }

    /// An unchanged value gives an empty delta, from every detector, even
    /// when every field was written (and then restored) through the handle.
    #[test]
    fn an_unchanged_value_gives_empty_deltas(bench in everything(), ops in ops()) {
        prop_assert!(bench.diff(&bench).is_empty());
        prop_assert!(bench.binary_diff(&bench.binary_benchmark()).is_empty());
        let mut untouched = Tracked::new(bench.clone());
        prop_assert!(!untouched.is_dirty());
        prop_assert!(untouched.take_delta().is_empty());

        let mut t = Tracked::new(bench.clone());
        for op in &ops {
            run(&mut t, op);
        }
        restore(&mut t, bench.clone());
        prop_assert!(t.is_dirty());
        prop_assert_eq!(&*t, &bench);
        prop_assert!(t.take_delta().is_empty());
        prop_assert!(!t.is_dirty());
        prop_assert!(t.diff(&bench).is_empty());
        prop_assert!(t.binary_diff(&bench.binary_benchmark()).is_empty());
    }

    /// After a delta is taken, the tracked value is the new benchmark: the
    /// next delta holds only the later edits, and the two applied in turn
    /// reach the final value.
    #[test]
    fn consecutive_deltas_compose(
        bench in everything(),
        first in ops(),
        second in ops(),
    ) {
        let mut t = Tracked::new(bench.clone());
        for op in &first {
            run(&mut t, op);
        }
        let d1 = t.take_delta();
        let middle = (*t).clone();
        for op in &second {
            run(&mut t, op);
        }
        let d2 = t.take_delta();
        prop_assert_eq!(&d2, &t.diff(&middle));
        let mut replica = bench.clone();
        let mut tree = bench.to_value();
        for d in [&d1, &d2] {
            replica.apply(d).map_err(|e| fail(e.to_string()))?;
            tree.apply_fields(d.fields()).map_err(|e| fail(e.to_string()))?;
        }
        prop_assert_eq!(&replica, &*t);
        prop_assert_eq!(tree.to_bytes(), t.to_bytes());
    }

    /// Sessions and their trees round-trip through bytes, and the typed
    /// encoding is the tree's.
    #[test]
    fn sessions_round_trip(v in everything()) {
        let bytes = v.to_bytes();
        prop_assert_eq!(&bytes, &v.to_value().to_bytes());
        prop_assert_eq!(Everything::from_bytes(&bytes), Ok(v.clone()));
        prop_assert_eq!(Value::from_bytes(&bytes), Ok(v.to_value()));
    }

    /// Every strict prefix of a delta is rejected by the decoder.
    #[test]
    fn truncated_deltas_are_rejected(bench in everything(), ops in ops()) {
        let (_, deltas) = edited(&bench, &ops);
        for (detector, delta) in DETECTORS.iter().zip(&deltas) {
            let bytes = delta.to_bytes();
            for cut in 0..bytes.len() {
                prop_assert!(
                    Delta::from_bytes(&bytes[..cut]).is_err(),
                    "{}: prefix of {} of {} bytes decoded",
                    detector,
                    cut,
                    bytes.len()
                );
            }
        }
    }

    /// A delta with flipped, inserted or removed bytes, or cut short, is
    /// rejected by the decoder or by apply (leaving the value and the tree
    /// unchanged), or applied whole; nothing panics.
    #[test]
    fn damaged_deltas_are_rejected_or_applied_whole(
        bench in everything(),
        ops in ops(),
        damage in vec(damage(), 1..4),
    ) {
        let (_, deltas) = edited(&bench, &ops);
        for delta in &deltas {
            check_untrusted(&damaged(&delta.to_bytes(), &damage), &bench)?;
        }
    }

    /// Random bytes never make the decoder or apply panic.
    #[test]
    fn random_bytes_are_rejected_or_applied_whole(
        target in everything(),
        bytes in vec(any::<u8>(), 0..64),
    ) {
        check_untrusted(&bytes, &target)?;
        // The same bytes behind a valid delta header and field id.
        for id in [CART, RECENT, HISTORY] {
            let mut framed = vec![0x61, id as u8];
            framed.extend_from_slice(&bytes);
            check_untrusted(&framed, &target)?;
        }
    }

    /// A well-formed delta applied to a value it was not made for (stale
    /// indices, missing keys, byte runs of another encoding) is rejected
    /// whole or applied whole, and the typed value and the tree agree.
    #[test]
    fn deltas_for_another_value_are_rejected_or_applied_whole(
        bench in everything(),
        ops in ops(),
        other in everything(),
    ) {
        let (_, deltas) = edited(&bench, &ops);
        for delta in &deltas {
            check_untrusted_delta(delta, &other)?;
        }
    }

    /// Hand-made sequence patches, in orders no differ emits, are rejected
    /// whole or applied whole, and the typed value and the tree agree.
    #[test]
    fn arbitrary_sequence_patches_are_rejected_or_applied_whole(
        target in everything(),
        (id, patch) in seq_patch(),
    ) {
        let delta = Delta::from_fields(vec![(id, patch)]);
        prop_assert_eq!(Delta::from_bytes(&delta.to_bytes()), Ok(delta.clone()));
        check_untrusted_delta(&delta, &target)?;
    }
}
