//! Change detection and delta size: the three detectors of `session-runtime`
//! against a full bincode encoding and against serde-diff.
//!
//! Run with `cargo bench --bench delta`; `BENCH_QUICK=1 cargo bench --bench
//! delta` (or `cargo bench --bench delta -- --quick`) is a short smoke run.
//! A criterion filter (`cargo bench --bench delta -- 1MiB/push`) runs part of
//! it; the summary then shows `-` for what did not run.
//!
//! Every measurement goes through `iter_custom`, which lets the routines
//! keep set-up and undo work out of the timed region, and lets this file
//! keep the samples criterion analyses: the summary printed at the end is
//! the median of the per-iteration times of each benchmark's measurement
//! samples, from this same run.
//!
//! Methods (each applied to each case, for a 4 KiB and a 1 MiB session):
//!
//! - `take_delta`: the edit through the tracked handle plus
//!   `Tracked::take_delta` (the edit belongs to it: the benchmark copy of a
//!   field is taken on its first write).
//! - `take_delta_only`: `take_delta` alone; the edit is done, untimed, just
//!   before. Each iteration is timed on its own, so it includes one
//!   `Instant` read (the summary prints its cost).
//! - `graph_diff`: `new.diff(&old)`.
//! - `binary_diff`: `new.binary_diff(&bench)` with `bench =
//!   old.binary_benchmark()`.
//! - `bincode_full`: `bincode::serde::encode_to_vec(&new, standard())`.
//! - `serde_diff`: `Diff::serializable(&old, &new)` encoded with bincode.
//! - `apply`: `old.apply(&delta)` with the `take_delta` delta;
//!   `apply_binary` with the binary delta; `serde_diff_apply`: the
//!   serde-diff bytes applied with `serde_diff::Apply`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion};
use serde::{Deserialize, Serialize};
use serde_diff::{Apply, Diff};
use session_runtime::{BinaryBenchmark, Delta, Session, Tracked, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, serde_diff::SerdeDiff)]
struct Item {
    sku: String,
    qty: u32,
    price_cents: u64,
}

#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize, serde_diff::SerdeDiff)]
struct Shop {
    #[immutable]
    user_id: u64,
    name: String,
    visits: u32,
    roles: Vec<String>,
    cart: Vec<Item>,
    prefs: HashMap<String, String>,
    blob: Vec<u8>,
}

fn bincode_full<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("bincode encodes")
}

fn serde_diff_bytes(old: &Shop, new: &Shop) -> Vec<u8> {
    bincode::serde::encode_to_vec(Diff::serializable(old, new), bincode::config::standard())
        .expect("serde-diff encodes with bincode")
}

fn serde_diff_apply(target: &mut Shop, bytes: &[u8]) {
    let (_, used) = bincode::serde::seed_decode_from_slice(
        Apply::deserializable(target),
        bytes,
        bincode::config::standard(),
    )
    .expect("serde-diff applies");
    debug_assert_eq!(used, bytes.len());
}

/// The two sessions measured: 100 items and a 4 KiB blob, or 1,000 items
/// and a 1 MiB blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    Small,
    Large,
}

impl Variant {
    const ALL: [Variant; 2] = [Variant::Small, Variant::Large];

    fn name(self) -> &'static str {
        match self {
            Variant::Small => "4KiB",
            Variant::Large => "1MiB",
        }
    }

    fn shop(self) -> Shop {
        let (items, blob) = match self {
            Variant::Small => (100, 4 << 10),
            Variant::Large => (1_000, 1 << 20),
        };
        Shop {
            user_id: 42,
            name: "Ada Lovelace".into(),
            visits: 7,
            roles: ["customer", "beta", "support", "admin"]
                .map(String::from)
                .to_vec(),
            cart: (0..items)
                .map(|i| Item {
                    sku: format!("SKU-{i:05}"),
                    qty: 1 + (i % 5) as u32,
                    price_cents: 199 + (i as u64 * 37) % 10_000,
                })
                .collect(),
            prefs: (0..20)
                .map(|i| (format!("pref-{i:02}"), format!("value-{i:02}-a")))
                .collect(),
            blob: (0..blob as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        }
    }
}

/// One change to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    /// `visits += 1`: a scalar field.
    Visits,
    /// `cart[57].qty += 1`: one element of a sequence.
    Qty57,
    /// One value of `prefs` changed.
    Pref,
    /// One item pushed onto `cart`.
    Push,
    /// `cart.remove(10)`.
    Remove10,
    /// `qty += 1` on 10 items spread over the cart.
    Scatter10,
    /// `blob[1000..1064]` rewritten.
    Blob64,
}

const PREF_KEY: &str = "pref-07";
const BLOB_RUN: std::ops::Range<usize> = 1000..1064;

fn pushed_item() -> Item {
    Item {
        sku: "SKU-NEW01".into(),
        qty: 3,
        price_cents: 1_299,
    }
}

/// Flips the last character of a pref value between `a` and `b`, in place.
fn toggle_pref(value: &mut String) {
    let last = value.pop().expect("pref values are not empty");
    value.push(if last == 'a' { 'b' } else { 'a' });
}

impl Case {
    const ALL: [Case; 7] = [
        Case::Visits,
        Case::Qty57,
        Case::Pref,
        Case::Push,
        Case::Remove10,
        Case::Scatter10,
        Case::Blob64,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Visits => "visits+=1",
            Case::Qty57 => "cart[57].qty",
            Case::Pref => "pref_value",
            Case::Push => "cart_push",
            Case::Remove10 => "cart_remove10",
            Case::Scatter10 => "qty_x10",
            Case::Blob64 => "blob_64B",
        }
    }

    /// Element (or field) patches in the delta, for the apply target.
    fn element_patches(self) -> Option<u32> {
        match self {
            Case::Visits | Case::Qty57 | Case::Pref | Case::Push | Case::Remove10 => Some(1),
            Case::Scatter10 => Some(10),
            Case::Blob64 => None,
        }
    }

    /// Whether the change can be made again on its own result (and applying
    /// its delta again is the same work), so that iterations need no undo.
    fn repeatable(self) -> bool {
        !matches!(self, Case::Push | Case::Remove10)
    }

    fn scatter_indices(len: usize) -> impl Iterator<Item = usize> {
        (0..10).map(move |k| k * len / 10 + 3)
    }

    /// Makes the change through the tracked handle. `spare` holds the item
    /// to push (and receives the removed one).
    fn edit(self, t: &mut Tracked<Shop>, spare: &mut Option<Item>) {
        match self {
            Case::Visits => {
                let v = t.edit().visits();
                *v = v.wrapping_add(1);
            }
            Case::Qty57 => {
                let q = &mut t.edit().cart()[57].qty;
                *q = q.wrapping_add(1);
            }
            Case::Pref => toggle_pref(t.edit().prefs().get_mut(PREF_KEY).expect("the pref exists")),
            Case::Push => t.edit().cart().push(spare.take().expect("an item to push")),
            Case::Remove10 => *spare = Some(t.edit().cart().remove(10)),
            Case::Scatter10 => {
                let cart = t.edit().cart();
                for i in Self::scatter_indices(cart.len()) {
                    cart[i].qty = cart[i].qty.wrapping_add(1);
                }
            }
            Case::Blob64 => t.edit().blob()[BLOB_RUN]
                .iter_mut()
                .for_each(|b| *b ^= 0x5a),
        }
    }

    /// The same change on a plain value.
    fn mutate(self, s: &mut Shop) {
        match self {
            Case::Visits => s.visits = s.visits.wrapping_add(1),
            Case::Qty57 => s.cart[57].qty = s.cart[57].qty.wrapping_add(1),
            Case::Pref => toggle_pref(s.prefs.get_mut(PREF_KEY).expect("the pref exists")),
            Case::Push => s.cart.push(pushed_item()),
            Case::Remove10 => {
                s.cart.remove(10);
            }
            Case::Scatter10 => {
                for i in Self::scatter_indices(s.cart.len()) {
                    s.cart[i].qty = s.cart[i].qty.wrapping_add(1);
                }
            }
            Case::Blob64 => s.blob[BLOB_RUN].iter_mut().for_each(|b| *b ^= 0x5a),
        }
    }

    /// Undoes `edit` on a tracked session whose delta was taken, without
    /// tracking (untimed). Only for the cases that are not repeatable.
    fn undo_tracked(self, slot: &mut Option<Tracked<Shop>>, spare: &mut Option<Item>) {
        let mut value = slot.take().expect("a session").into_inner();
        match self {
            Case::Push => *spare = value.cart.pop(),
            Case::Remove10 => value
                .cart
                .insert(10, spare.take().expect("the removed item")),
            _ => {}
        }
        *slot = Some(Tracked::new(value));
    }

    /// Undoes an apply of this case's delta (untimed).
    fn undo_apply(self, target: &mut Shop, old: &Shop) {
        match self {
            Case::Push => {
                target.cart.pop();
            }
            Case::Remove10 => target.cart.insert(10, old.cart[10].clone()),
            _ => {}
        }
    }
}

/// One case of one variant, with everything computed once, untimed.
struct Fixture {
    variant: Variant,
    case: Case,
    old: Shop,
    new: Shop,
    bench: BinaryBenchmark,
    tracked: Delta,
    graph: Delta,
    binary: Delta,
    full_len: usize,
    serde_diff: Vec<u8>,
}

impl Fixture {
    fn new(variant: Variant, case: Case, base: &Shop) -> Self {
        let old = base.clone();
        let mut new = old.clone();
        case.mutate(&mut new);

        let mut t = Tracked::new(old.clone());
        let mut spare = Some(pushed_item());
        case.edit(&mut t, &mut spare);
        assert!(t.is_dirty());
        let tracked = t.take_delta();
        assert_eq!(*t, new, "{case:?}: tracked edit and plain edit agree");

        let graph = new.diff(&old);
        let bench = old.binary_benchmark();
        let binary = new.binary_diff(&bench);
        let serde_diff = serde_diff_bytes(&old, &new);
        let full_len = bincode_full(&new).len();

        // Every delta, and the serde-diff bytes, turn `old` into `new`.
        for (what, delta) in [
            ("take_delta", &tracked),
            ("graph", &graph),
            ("binary", &binary),
        ] {
            let mut target = old.clone();
            target
                .apply(delta)
                .unwrap_or_else(|e| panic!("{case:?} {what} delta applies: {e}"));
            assert_eq!(target, new, "{case:?}: {what} delta");
            // Round trip through the wire format.
            let decoded = Delta::from_bytes(&delta.to_bytes()).expect("a delta decodes");
            assert_eq!(&decoded, delta);
            assert_eq!(delta.to_bytes().len(), delta.encoded_len());
        }
        assert_eq!(tracked, graph, "{case:?}: take_delta and graph diff agree");
        let mut target = old.clone();
        serde_diff_apply(&mut target, &serde_diff);
        assert_eq!(target, new, "{case:?}: serde-diff applies");

        // Applying again on the result must be the same work for the
        // repeatable cases (the apply loop relies on it), and the undo must
        // restore `old` for the others.
        for delta in [&tracked, &binary] {
            let mut target = old.clone();
            target.apply(delta).expect("applies");
            if case.repeatable() {
                target.apply(delta).expect("applies again");
                assert_eq!(target, new);
            } else {
                case.undo_apply(&mut target, &old);
                assert_eq!(target, old);
            }
        }
        let mut target = old.clone();
        serde_diff_apply(&mut target, &serde_diff);
        if case.repeatable() {
            serde_diff_apply(&mut target, &serde_diff);
            assert_eq!(target, new);
        }

        Fixture {
            variant,
            case,
            old,
            new,
            bench,
            tracked,
            graph,
            binary,
            full_len,
            serde_diff,
        }
    }
}

/// What each benchmark measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    TakeDelta,
    TakeDeltaOnly,
    GraphDiff,
    BinaryDiff,
    BincodeFull,
    SerdeDiff,
    Apply,
    ApplyBinary,
    SerdeDiffApply,
}

impl Method {
    const ALL: [Method; 9] = [
        Method::TakeDelta,
        Method::TakeDeltaOnly,
        Method::GraphDiff,
        Method::BinaryDiff,
        Method::BincodeFull,
        Method::SerdeDiff,
        Method::Apply,
        Method::ApplyBinary,
        Method::SerdeDiffApply,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::TakeDelta => "take_delta",
            Method::TakeDeltaOnly => "take_delta_only",
            Method::GraphDiff => "graph_diff",
            Method::BinaryDiff => "binary_diff",
            Method::BincodeFull => "bincode_full",
            Method::SerdeDiff => "serde_diff",
            Method::Apply => "apply",
            Method::ApplyBinary => "apply_binary",
            Method::SerdeDiffApply => "serde_diff_apply",
        }
    }

    /// Bytes the method ships.
    fn bytes(self, f: &Fixture) -> usize {
        match self {
            Method::TakeDelta | Method::TakeDeltaOnly | Method::Apply => f.tracked.encoded_len(),
            Method::GraphDiff => f.graph.encoded_len(),
            Method::BinaryDiff | Method::ApplyBinary => f.binary.encoded_len(),
            Method::BincodeFull => f.full_len,
            Method::SerdeDiff | Method::SerdeDiffApply => f.serde_diff.len(),
        }
    }

    /// The serde-diff method this one is compared with.
    fn baseline(self) -> Method {
        match self {
            Method::Apply | Method::ApplyBinary | Method::SerdeDiffApply => Method::SerdeDiffApply,
            _ => Method::SerdeDiff,
        }
    }
}

/// `iters` runs of a method on a fixture; returns the time measured.
fn run(f: &Fixture, method: Method, iters: u64) -> Duration {
    let case = f.case;
    match method {
        Method::TakeDelta | Method::TakeDeltaOnly => {
            let mut slot = Some(Tracked::new(f.old.clone()));
            let mut spare = Some(pushed_item());
            let only = method == Method::TakeDeltaOnly;
            if case.repeatable() && !only {
                let t = slot.as_mut().expect("a session");
                let start = Instant::now();
                for _ in 0..iters {
                    case.edit(t, &mut spare);
                    black_box(t.take_delta());
                }
                return start.elapsed();
            }
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = slot.as_mut().expect("a session");
                let delta = if only {
                    case.edit(t, &mut spare);
                    let start = Instant::now();
                    let delta = t.take_delta();
                    total += start.elapsed();
                    delta
                } else {
                    let start = Instant::now();
                    case.edit(t, &mut spare);
                    let delta = t.take_delta();
                    total += start.elapsed();
                    delta
                };
                drop(black_box(delta));
                if !case.repeatable() {
                    case.undo_tracked(&mut slot, &mut spare);
                }
            }
            total
        }
        Method::GraphDiff => timed(iters, || f.new.diff(&f.old)),
        Method::BinaryDiff => timed(iters, || f.new.binary_diff(&f.bench)),
        Method::BincodeFull => timed(iters, || bincode_full(&f.new)),
        Method::SerdeDiff => timed(iters, || serde_diff_bytes(&f.old, &f.new)),
        Method::Apply | Method::ApplyBinary | Method::SerdeDiffApply => {
            let mut target = f.old.clone();
            let apply = |target: &mut Shop| match method {
                Method::Apply => target.apply(&f.tracked).expect("applies"),
                Method::ApplyBinary => target.apply(&f.binary).expect("applies"),
                _ => serde_diff_apply(target, &f.serde_diff),
            };
            if case.repeatable() {
                let start = Instant::now();
                for _ in 0..iters {
                    apply(black_box(&mut target));
                }
                return start.elapsed();
            }
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                apply(black_box(&mut target));
                total += start.elapsed();
                if method == Method::SerdeDiffApply && case == Case::Remove10 {
                    // serde-diff patches every shifted element, then truncates.
                    target.cart.clone_from(&f.old.cart);
                } else {
                    case.undo_apply(&mut target, &f.old);
                }
            }
            total
        }
    }
}

fn timed<R>(iters: u64, mut routine: impl FnMut() -> R) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(routine());
    }
    start.elapsed()
}

type Key = (Variant, Case, Method);

/// The `(iterations, time)` of every call criterion made, per benchmark.
#[derive(Default)]
struct Samples(RefCell<BTreeMap<Key, Vec<(u64, Duration)>>>);

impl Samples {
    fn record(&self, key: Key, iters: u64, time: Duration) {
        self.0
            .borrow_mut()
            .entry(key)
            .or_default()
            .push((iters, time));
    }

    /// Median time per iteration over the last `n` calls (criterion's
    /// measurement samples come after its warm-up calls).
    fn ns(&self, key: &Key, n: usize) -> Option<f64> {
        let map = self.0.borrow();
        let all = map.get(key)?;
        let mut per_iter: Vec<f64> = all[all.len().saturating_sub(n)..]
            .iter()
            .filter(|(iters, _)| *iters > 0)
            .map(|(iters, t)| t.as_nanos() as f64 / *iters as f64)
            .collect();
        if per_iter.is_empty() {
            return None;
        }
        per_iter.sort_by(f64::total_cmp);
        let mid = per_iter.len() / 2;
        Some(if per_iter.len() % 2 == 1 {
            per_iter[mid]
        } else {
            (per_iter[mid - 1] + per_iter[mid]) / 2.0
        })
    }
}

fn bench_fixture(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    f: &Fixture,
    samples: &Samples,
) {
    for method in Method::ALL {
        let key = (f.variant, f.case, method);
        group.bench_function(format!("{}/{}", f.case.name(), method.name()), |b| {
            b.iter_custom(|iters| {
                let time = run(f, method, iters);
                samples.record(key, iters, time);
                time
            })
        });
    }
}

/// What the run measured, and how to print it.
struct Report<'a> {
    fixtures: &'a [Fixture],
    samples: &'a Samples,
    sample_size: usize,
}

impl Report<'_> {
    fn fixture(&self, variant: Variant, case: Case) -> &Fixture {
        self.fixtures
            .iter()
            .find(|f| f.variant == variant && f.case == case)
            .expect("every fixture was built")
    }

    fn ns(&self, variant: Variant, case: Case, method: Method) -> Option<f64> {
        self.samples.ns(&(variant, case, method), self.sample_size)
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:<14} {:<17} {:>14} {:>10} {:>20}",
            "session", "case", "method", "ns", "bytes", "ratio_vs_serde_diff"
        );
        for variant in Variant::ALL {
            for case in Case::ALL {
                let f = self.fixture(variant, case);
                for method in Method::ALL {
                    let ns = self.ns(variant, case, method);
                    let base = self.ns(variant, case, method.baseline());
                    let ratio = match (ns, base) {
                        (Some(ns), Some(base)) if ns > 0.0 => format!("{:.1}x", base / ns),
                        _ => "-".into(),
                    };
                    let _ = writeln!(
                        out,
                        "{:<8} {:<14} {:<17} {:>14} {:>10} {:>20}",
                        variant.name(),
                        case.name(),
                        method.name(),
                        ns.map_or("-".into(), |ns| format!("{ns:.0}")),
                        method.bytes(f),
                        ratio
                    );
                }
            }
            out.push('\n');
        }
        out
    }

    fn targets(&self) -> String {
        let mut out = String::new();
        let mut all_pass = true;
        let mut line = |out: &mut String, pass: Option<bool>, text: String| {
            let verdict = match pass {
                Some(true) => "PASS",
                Some(false) => {
                    all_pass = false;
                    "FAIL"
                }
                None => {
                    all_pass = false;
                    "n/a "
                }
            };
            let _ = writeln!(out, "  {verdict}  {text}");
        };

        for (method, want, label) in [
            (
                Method::TakeDelta,
                1000.0,
                "take_delta (edit + take_delta) >= 1000x faster than serde-diff",
            ),
            (
                Method::GraphDiff,
                50.0,
                "graph diff >= 50x faster than serde-diff",
            ),
        ] {
            let _ = writeln!(out, "{label}:");
            for variant in Variant::ALL {
                for case in Case::ALL {
                    let ns = self.ns(variant, case, method);
                    let base = self.ns(variant, case, Method::SerdeDiff);
                    let speedup = ns.zip(base).map(|(ns, base)| base / ns);
                    line(
                        &mut out,
                        speedup.map(|s| s >= want),
                        format!(
                            "{:<5} {:<14} {}",
                            variant.name(),
                            case.name(),
                            speedup.map_or("-".into(), |s| format!("{s:.0}x"))
                        ),
                    );
                }
            }
        }

        let _ = writeln!(
            out,
            "take_delta (edit + take_delta) on 1 MiB within 2x of 4 KiB:"
        );
        for case in Case::ALL {
            let small = self.ns(Variant::Small, case, Method::TakeDelta);
            let large = self.ns(Variant::Large, case, Method::TakeDelta);
            let small_only = self.ns(Variant::Small, case, Method::TakeDeltaOnly);
            let large_only = self.ns(Variant::Large, case, Method::TakeDeltaOnly);
            let r = small.zip(large).map(|(s, l)| l / s);
            let r_only = small_only.zip(large_only).map(|(s, l)| l / s);
            line(
                &mut out,
                r.map(|r| r <= 2.0),
                format!(
                    "{:<14} {:>10} ns -> {:>10} ns  ({}; take_delta alone {})",
                    case.name(),
                    small.map_or("-".into(), |v| format!("{v:.0}")),
                    large.map_or("-".into(), |v| format!("{v:.0}")),
                    r.map_or("-".into(), |r| format!("{r:.1}x")),
                    r_only.map_or("-".into(), |r| format!("{r:.1}x")),
                ),
            );
        }

        // An element's size: its encoding in the session format (a leaf:
        // a 1-byte header and the bincode bytes), as it appears in a delta.
        let leaf = |item: &Item| Value::Leaf(session_runtime::codec::encode(item)).encoded_len();
        let item57 = &self.fixture(Variant::Small, Case::Qty57).new.cart[57];
        let (elem, elem_bincode) = (leaf(item57), bincode_full(item57).len());
        let (pushed, pushed_bincode) = (leaf(&pushed_item()), bincode_full(&pushed_item()).len());
        let _ = writeln!(
            out,
            "delta bytes (element = its session encoding: cart[57] {elem} B, pushed item \
             {pushed} B, each a 1-byte leaf header + {elem_bincode} / {pushed_bincode} B of bincode; \
             judged on take_delta and graph diff, the blob run on binary diff):"
        );
        let byte_targets: [(Case, usize, &str); 5] = [
            (Case::Visits, 8, "scalar <= 8 B"),
            (Case::Qty57, elem + 4, "one element <= element + 4 B"),
            (Case::Push, pushed + 4, "push <= item + 4 B"),
            (Case::Remove10, 6, "remove <= 6 B"),
            (Case::Blob64, 72, "64-byte blob run <= 72 B (binary diff)"),
        ];
        for (case, limit, label) in byte_targets {
            let judged: &[Method] = if case == Case::Blob64 {
                &[Method::BinaryDiff]
            } else {
                &[Method::TakeDelta, Method::GraphDiff]
            };
            for variant in Variant::ALL {
                let f = self.fixture(variant, case);
                for &method in judged {
                    let bytes = method.bytes(f);
                    line(
                        &mut out,
                        Some(bytes <= limit),
                        format!(
                            "{label:<38} {:<5} {:<12} {bytes:>3} B (limit {limit})",
                            variant.name(),
                            method.name()
                        ),
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "  (not judged: the same cases through the other detectors)"
        );
        for (case, limit, label) in byte_targets {
            let others: &[Method] = if case == Case::Blob64 {
                &[Method::TakeDelta, Method::GraphDiff]
            } else {
                &[Method::BinaryDiff]
            };
            for variant in Variant::ALL {
                let f = self.fixture(variant, case);
                for &method in others {
                    let bytes = method.bytes(f);
                    let _ = writeln!(
                        out,
                        "  info  {label:<38} {:<5} {:<12} {bytes:>3} B ({})",
                        variant.name(),
                        method.name(),
                        if bytes <= limit { "within" } else { "over" }
                    );
                }
            }
        }

        let _ = writeln!(out, "apply (take_delta delta) <= 100 ns per element patch:");
        for variant in Variant::ALL {
            for case in Case::ALL {
                let Some(patches) = case.element_patches() else {
                    continue;
                };
                let per = self
                    .ns(variant, case, Method::Apply)
                    .map(|ns| ns / f64::from(patches));
                line(
                    &mut out,
                    per.map(|p| p <= 100.0),
                    format!(
                        "{:<5} {:<14} {} ns per patch ({patches} patch{})",
                        variant.name(),
                        case.name(),
                        per.map_or("-".into(), |p| format!("{p:.0}")),
                        if patches == 1 { "" } else { "es" }
                    ),
                );
            }
        }
        let _ = writeln!(
            out,
            "\nall targets: {}",
            if all_pass { "PASS" } else { "FAIL" }
        );
        out
    }
}

/// The cost of the `Instant` read around each separately timed iteration.
fn timer_overhead_ns() -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let n = 100_000u32;
        let mut total = Duration::ZERO;
        for _ in 0..n {
            let start = Instant::now();
            total += black_box(start).elapsed();
        }
        best = best.min(total.as_nanos() as f64 / f64::from(n));
    }
    best
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let sample_size = if quick { 10 } else { 20 };
    let mut criterion = Criterion::default()
        .sample_size(sample_size)
        .warm_up_time(Duration::from_millis(if quick { 50 } else { 300 }))
        .measurement_time(Duration::from_millis(if quick { 150 } else { 1_000 }))
        .nresamples(if quick { 1_000 } else { 10_000 })
        .configure_from_args();
    let args: Vec<String> = std::env::args().collect();
    let benchmarking = args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"));

    let fixtures: Vec<Fixture> = Variant::ALL
        .into_iter()
        .flat_map(|variant| {
            let base = variant.shop();
            Case::ALL.map(|case| Fixture::new(variant, case, &base))
        })
        .collect();
    for variant in Variant::ALL {
        let shop = variant.shop();
        println!(
            "{} session: {} items, {} B blob; full encoding {} B (bincode serde), {} B (session)",
            variant.name(),
            shop.cart.len(),
            shop.blob.len(),
            bincode_full(&shop).len(),
            shop.to_bytes().len()
        );
    }

    let samples = Samples::default();
    for variant in Variant::ALL {
        let mut group = criterion.benchmark_group(variant.name());
        for f in fixtures.iter().filter(|f| f.variant == variant) {
            bench_fixture(&mut group, f, &samples);
        }
        group.finish();
    }
    criterion.final_summary();

    if !benchmarking {
        println!("delta bench: not benchmarking (test mode); fixtures and deltas checked.");
        return;
    }
    let report = Report {
        fixtures: &fixtures,
        samples: &samples,
        sample_size,
    };
    println!(
        "\n=== summary (median ns per iteration of criterion's measurement samples, this run{}) ===",
        if quick { ", BENCH_QUICK" } else { "" }
    );
    println!(
        "take_delta_only and the non-repeatable cases (cart_push, cart_remove10) time each \
         iteration separately; that includes one Instant read, ~{:.0} ns here.",
        timer_overhead_ns()
    );
    println!(
        "ratio_vs_serde_diff = serde-diff ns / method ns (apply rows: serde_diff_apply ns / method ns).\n"
    );
    print!("{}", report.table());
    println!("=== targets ===");
    print!("{}", report.targets());
}
