//! One test per behaviour of change detection and apply: the shape of the
//! patch each kind of change produces, the guards (size, immutability),
//! apply errors, the schema, dirty tracking, and delta sizes for the
//! reference cases.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use session_runtime::{
    codec, ApplyError, ApplyErrorKind, DecodeError, Delta, Edit, MapOp, Patch, PathStep, SeqOp,
    Session, Tracked, Value,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price_cents: u64,
}

#[derive(Session, Clone, Debug, PartialEq)]
struct Profile {
    #[immutable]
    since: u64,
    email: String,
    newsletter: bool,
    langs: Vec<String>,
}

#[derive(Session, Clone, Debug, PartialEq)]
struct Shop {
    #[immutable]
    user_id: u64,
    name: String,
    visits: u32,
    cart: Vec<Item>,
    blob: Vec<u8>,
    prefs: BTreeMap<String, String>,
    tags: HashSet<String>,
    note: Option<String>,
    profile: Profile,
    backup_profile: Option<Profile>,
    accounts: HashMap<String, Profile>,
    #[session(id = 20)]
    counter: u64,
}

const USER_ID: u16 = 0;
const NAME: u16 = 1;
const VISITS: u16 = 2;
const CART: u16 = 3;
const BLOB: u16 = 4;
const PREFS: u16 = 5;
const TAGS: u16 = 6;
const NOTE: u16 = 7;
const PROFILE: u16 = 8;
const BACKUP_PROFILE: u16 = 9;
const ACCOUNTS: u16 = 10;
const COUNTER: u16 = 20;

/// Field ids of `Profile`.
const PROFILE_SINCE: u16 = 0;
const PROFILE_EMAIL: u16 = 1;
const PROFILE_NEWSLETTER: u16 = 2;
const PROFILE_LANGS: u16 = 3;

fn item(i: u64) -> Item {
    Item {
        sku: format!("SKU-{i:04}"),
        qty: 1,
        price_cents: 100 + i,
    }
}

fn profile(email: &str) -> Profile {
    Profile {
        since: 2024,
        email: email.into(),
        newsletter: false,
        langs: vec!["en".into(), "fr".into(), "de".into()],
    }
}

/// A session with a 100-item cart and a 4 KiB blob.
fn shop() -> Shop {
    Shop {
        user_id: 42,
        name: "Ada".into(),
        visits: 3,
        cart: (0..100).map(item).collect(),
        blob: (0..4096u32).map(|i| (i * 7 % 251) as u8).collect(),
        prefs: (0..20)
            .map(|i| (format!("pref-{i:02}"), format!("value-{i}")))
            .collect(),
        tags: (0..10).map(|i| format!("tag-{i}")).collect(),
        note: None,
        profile: profile("ada@example.com"),
        backup_profile: Some(profile("ada@backup.example.com")),
        accounts: (0..5)
            .map(|i| (format!("acct-{i}"), profile(&format!("a{i}@example.com"))))
            .collect(),
        counter: 0,
    }
}

/// A value as a leaf of the tree: its bincode encoding.
fn leaf<T: Serialize>(value: &T) -> Value {
    Value::Leaf(codec::encode(value))
}

/// A map key or set element as the tree addresses it.
fn key<T: Serialize>(k: &T) -> Vec<u8> {
    codec::encode(k)
}

/// The graph diff of `edit` applied to `shop()`, checked to change exactly
/// the field `id`, to turn the old value into the new one (typed and tree),
/// and to agree with dirty tracking. Returns that field's patch.
fn patch_of(id: u16, edit: impl FnOnce(&mut Tracked<Shop>)) -> Patch {
    let old = shop();
    let mut t = Tracked::new(old.clone());
    edit(&mut t);
    let tracked = t.take_delta();
    let new = t.into_inner();
    let delta = new.diff(&old);
    assert_eq!(tracked, delta, "dirty tracking and graph diff disagree");
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), vec![id]);
    assert_replicates(&old, &new, &delta);
    delta
        .field(id)
        .cloned()
        .expect("the delta patches the field")
}

/// Applying `delta` to `old` gives `new`, on the typed value and the tree.
fn assert_replicates(old: &Shop, new: &Shop, delta: &Delta) {
    let mut typed = old.clone();
    typed
        .apply(delta)
        .expect("the delta applies to its benchmark");
    assert_eq!(&typed, new);
    let mut tree = old.to_value();
    tree.apply_fields(delta.fields())
        .expect("the delta applies to the benchmark's tree");
    assert_eq!(tree.to_bytes(), new.to_bytes());
}

/// Applies a bad delta to `shop()` and its tree, checks both refuse it and
/// stay unchanged, and returns the typed error.
fn rejected(delta: &Delta) -> ApplyError {
    let original = shop();
    let mut typed = original.clone();
    let err = typed.apply(delta).expect_err("the delta must be rejected");
    assert_eq!(typed, original, "a failed apply changed the value");
    err
}

/// Like [`rejected`], for the tree.
fn rejected_by_tree(delta: &Delta) -> ApplyError {
    let original = shop().to_value();
    let mut tree = original.clone();
    let err = tree
        .apply_fields(delta.fields())
        .expect_err("the tree must reject the delta");
    assert_eq!(tree, original, "a failed apply changed the tree");
    err
}

fn one_field(id: u16, patch: Patch) -> Delta {
    Delta::from_fields(vec![(id, patch)])
}

// --- Sequences --------------------------------------------------------------

#[test]
fn a_push_ships_only_the_pushed_element() {
    let patch = patch_of(CART, |t| t.edit().cart().push(item(1000)));
    assert_eq!(
        patch,
        Patch::Seq(vec![SeqOp::Push(vec![leaf(&item(1000))])])
    );
}

#[test]
fn a_remove_ships_an_index_and_a_count() {
    let patch = patch_of(CART, |t| {
        t.edit().cart().remove(10);
    });
    assert_eq!(
        patch,
        Patch::Seq(vec![SeqOp::Remove {
            index: 10,
            count: 1
        }])
    );
}

#[test]
fn a_truncate_ships_one_remove_of_the_tail() {
    let patch = patch_of(CART, |t| t.edit().cart().truncate(60));
    assert_eq!(
        patch,
        Patch::Seq(vec![SeqOp::Remove {
            index: 60,
            count: 40
        }])
    );
}

#[test]
fn an_insert_in_the_middle_ships_the_inserted_element() {
    let patch = patch_of(CART, |t| t.edit().cart().insert(40, item(1000)));
    assert_eq!(
        patch,
        Patch::Seq(vec![SeqOp::Insert {
            index: 40,
            values: vec![leaf(&item(1000))],
        }])
    );
}

#[test]
fn an_element_change_ships_that_element() {
    let patch = patch_of(CART, |t| t.edit().cart()[7].qty = 9);
    let mut changed = item(7);
    changed.qty = 9;
    assert_eq!(
        patch,
        Patch::Seq(vec![SeqOp::Set {
            index: 7,
            patch: Patch::Set(leaf(&changed)),
        }])
    );
}

#[test]
fn scattered_element_changes_ship_one_patch_each() {
    let patch = patch_of(CART, |t| {
        let cart = t.edit().cart();
        cart[3].qty = 5;
        cart[70].qty = 5;
    });
    let Patch::Seq(ops) = patch else {
        panic!("expected a sequence patch, got {patch:?}");
    };
    let indices: Vec<u64> = ops
        .iter()
        .map(|op| match op {
            SeqOp::Set { index, .. } => *index,
            other => panic!("expected element patches only, got {other:?}"),
        })
        .collect();
    assert_eq!(indices, vec![3, 70]);
}

#[test]
fn a_patch_larger_than_the_sequence_falls_back_to_the_whole_sequence() {
    let patch = patch_of(CART, |t| {
        for it in t.edit().cart().iter_mut().skip(5) {
            it.qty = 2;
        }
    });
    let Patch::Set(whole) = patch else {
        panic!("expected the whole cart, got a structural patch: {patch:?}");
    };
    let mut expected = shop().cart;
    for it in expected.iter_mut().skip(5) {
        it.qty = 2;
    }
    assert_eq!(whole, Value::Seq(expected.iter().map(leaf).collect()));
}

// --- Byte strings -------------------------------------------------------------

#[test]
fn a_byte_string_change_ships_one_run() {
    let patch = patch_of(BLOB, |t| t.edit().blob()[1000..1064].fill(0xee));
    let header = Value::Leaf(shop().blob).encoded_len() - 4096;
    assert_eq!(
        patch,
        Patch::Splice(vec![Edit {
            skip: (header + 1000) as u64,
            delete: 64,
            insert: vec![0xee; 64],
        }])
    );
}

#[test]
fn a_rewritten_byte_string_ships_whole() {
    let patch = patch_of(BLOB, |t| t.edit().blob().iter_mut().for_each(|b| *b ^= 1));
    let expected: Vec<u8> = shop().blob.iter().map(|b| b ^ 1).collect();
    assert_eq!(patch, Patch::Set(Value::Leaf(expected)));
}

// --- Maps and sets ------------------------------------------------------------

#[test]
fn a_map_insert_ships_a_put() {
    let patch = patch_of(PREFS, |t| {
        t.edit().prefs().insert("lang".into(), "fr".into());
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Put {
            key: key(&"lang"),
            value: leaf(&"fr"),
        }])
    );
}

#[test]
fn a_map_remove_ships_a_remove() {
    let patch = patch_of(PREFS, |t| {
        t.edit().prefs().remove("pref-07");
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Remove {
            key: key(&"pref-07")
        }])
    );
}

#[test]
fn an_opaque_map_value_change_ships_a_put_of_the_value() {
    let patch = patch_of(PREFS, |t| {
        t.edit().prefs().insert("pref-03".into(), "changed".into());
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Put {
            key: key(&"pref-03"),
            value: leaf(&"changed"),
        }])
    );
}

#[test]
fn a_nested_map_value_change_ships_a_patch_of_the_value() {
    let patch = patch_of(ACCOUNTS, |t| {
        let account = t
            .edit()
            .accounts()
            .get_mut("acct-2")
            .expect("acct-2 exists");
        account.newsletter = true;
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Patch {
            key: key(&"acct-2"),
            patch: Patch::Record(vec![(PROFILE_NEWSLETTER, Patch::Set(leaf(&true)))]),
        }])
    );
}

#[test]
fn map_ops_are_in_key_order() {
    let patch = patch_of(PREFS, |t| {
        let prefs = t.edit().prefs();
        prefs.insert("zzz".into(), "last".into());
        prefs.remove("pref-10");
        prefs.insert("aaa".into(), "first".into());
    });
    let Patch::Map(ops) = patch else {
        panic!("expected a map patch, got {patch:?}");
    };
    let keys: Vec<&[u8]> = ops.iter().map(MapOp::key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 3);
}

#[test]
fn a_set_insert_ships_a_put_of_an_empty_member() {
    let patch = patch_of(TAGS, |t| {
        t.edit().tags().insert("new".into());
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Put {
            key: key(&"new"),
            value: Value::Leaf(vec![]),
        }])
    );
}

#[test]
fn a_set_remove_ships_a_remove() {
    let patch = patch_of(TAGS, |t| {
        t.edit().tags().remove("tag-4");
    });
    assert_eq!(
        patch,
        Patch::Map(vec![MapOp::Remove { key: key(&"tag-4") }])
    );
}

// --- Options ------------------------------------------------------------------

#[test]
fn setting_an_option_ships_the_value() {
    let patch = patch_of(NOTE, |t| *t.edit().note() = Some("hi".into()));
    assert_eq!(
        patch,
        Patch::Set(Value::Option(Some(Box::new(leaf(&"hi")))))
    );
}

#[test]
fn clearing_an_option_ships_none() {
    let patch = patch_of(BACKUP_PROFILE, |t| *t.edit().backup_profile() = None);
    assert_eq!(patch, Patch::Set(Value::Option(None)));
}

#[test]
fn an_opaque_option_content_change_ships_the_new_content() {
    let old = Shop {
        note: Some("hello".into()),
        ..shop()
    };
    let new = Shop {
        note: Some("hello, world".into()),
        ..old.clone()
    };
    let delta = new.diff(&old);
    assert_eq!(
        delta,
        one_field(
            NOTE,
            Patch::Set(Value::Option(Some(Box::new(leaf(&"hello, world")))))
        )
    );
    assert_replicates(&old, &new, &delta);
}

#[test]
fn a_nested_option_content_change_ships_a_patch_of_the_content() {
    let patch = patch_of(BACKUP_PROFILE, |t| {
        if let Some(p) = t.edit().backup_profile() {
            p.email = "new@example.com".into();
        }
    });
    assert_eq!(
        patch,
        Patch::Some(Box::new(Patch::Record(vec![(
            PROFILE_EMAIL,
            Patch::Set(leaf(&"new@example.com"))
        )])))
    );
}

// --- Nested sessions ------------------------------------------------------------

#[test]
fn a_nested_field_change_ships_a_record_patch_of_that_field() {
    let patch = patch_of(PROFILE, |t| t.edit().profile().newsletter = true);
    assert_eq!(
        patch,
        Patch::Record(vec![(PROFILE_NEWSLETTER, Patch::Set(leaf(&true)))])
    );
}

#[test]
fn a_nested_collection_change_ships_a_record_patch_of_its_ops() {
    let patch = patch_of(PROFILE, |t| t.edit().profile().langs.push("es".into()));
    assert_eq!(
        patch,
        Patch::Record(vec![(
            PROFILE_LANGS,
            Patch::Seq(vec![SeqOp::Push(vec![leaf(&"es")])])
        )])
    );
}

// --- Immutable fields -----------------------------------------------------------

#[test]
fn immutable_fields_never_appear_in_a_delta() {
    let old = shop();
    let new = Shop {
        user_id: 7,
        name: "Grace".into(),
        ..old.clone()
    };
    let graph = new.diff(&old);
    let binary = new.binary_diff(&old.binary_benchmark());
    for delta in [&graph, &binary] {
        assert_eq!(delta.field_ids().collect::<Vec<_>>(), vec![NAME]);
    }
    // Applied, the delta changes the name and leaves the user id as it was.
    let mut replica = old.clone();
    replica.apply(&graph).expect("applies");
    assert_eq!(replica.name, "Grace");
    assert_eq!(replica.user_id, 42);

    // An immutable change alone is no change at all.
    let only_immutable = Shop {
        user_id: 7,
        ..old.clone()
    };
    assert!(only_immutable.diff(&old).is_empty());
    assert!(only_immutable
        .binary_diff(&old.binary_benchmark())
        .is_empty());
}

#[test]
fn a_nested_struct_with_other_immutable_values_ships_whole() {
    let old = shop();
    let mut new = old.clone();
    new.profile.since = 1999;
    new.profile.newsletter = true;
    let delta = new.diff(&old);
    assert_eq!(
        delta,
        one_field(PROFILE, Patch::Set(new.profile.to_value()))
    );
    assert_replicates(&old, &new, &delta);
}

// --- Apply errors -----------------------------------------------------------------

#[test]
fn an_unknown_field_id_is_rejected() {
    let delta = one_field(99, Patch::Set(leaf(&1u32)));
    let err = rejected(&delta);
    assert_eq!(err.kind(), &ApplyErrorKind::UnknownField { id: 99 });
    assert_eq!(err.path(), &[]);
    let err = rejected_by_tree(&delta);
    assert_eq!(err.kind(), &ApplyErrorKind::UnknownField { id: 99 });
}

#[test]
fn a_patch_of_an_immutable_field_is_rejected() {
    let err = rejected(&one_field(USER_ID, Patch::Set(leaf(&7u64))));
    assert_eq!(err.kind(), &ApplyErrorKind::ImmutableField { id: USER_ID });
    assert_eq!(err.path(), &[]);

    // Also inside a nested session.
    let err = rejected(&one_field(
        PROFILE,
        Patch::Record(vec![(PROFILE_SINCE, Patch::Set(leaf(&1999u64)))]),
    ));
    assert_eq!(
        err.kind(),
        &ApplyErrorKind::ImmutableField { id: PROFILE_SINCE }
    );
    assert_eq!(err.path(), &[PathStep::Field(PROFILE)]);
}

#[test]
fn an_index_out_of_range_is_rejected() {
    let delta = one_field(
        CART,
        Patch::Seq(vec![SeqOp::Set {
            index: 100,
            patch: Patch::Set(leaf(&item(0))),
        }]),
    );
    for err in [rejected(&delta), rejected_by_tree(&delta)] {
        assert_eq!(
            err.kind(),
            &ApplyErrorKind::IndexOutOfRange {
                index: 100,
                len: 100
            }
        );
        assert_eq!(err.path(), &[PathStep::Field(CART)]);
    }

    let remove_past_the_end = one_field(
        CART,
        Patch::Seq(vec![SeqOp::Remove {
            index: 99,
            count: 2,
        }]),
    );
    for err in [
        rejected(&remove_past_the_end),
        rejected_by_tree(&remove_past_the_end),
    ] {
        assert_eq!(
            err.kind(),
            &ApplyErrorKind::IndexOutOfRange {
                index: 101,
                len: 100
            }
        );
    }
}

#[test]
fn a_patch_of_another_shape_is_rejected() {
    // A map patch on a sequence.
    let delta = one_field(CART, Patch::Map(vec![]));
    for err in [rejected(&delta), rejected_by_tree(&delta)] {
        assert!(
            matches!(err.kind(), ApplyErrorKind::Shape { .. }),
            "{err:?}"
        );
        assert_eq!(err.path(), &[PathStep::Field(CART)]);
    }

    // A leaf where the sequence should be.
    let err = rejected(&one_field(CART, Patch::Set(leaf(&1u32))));
    assert_eq!(
        err.kind(),
        &ApplyErrorKind::Shape {
            expected: "sequence",
            found: "leaf"
        }
    );

    // The content of an option that is `None`.
    let delta = one_field(NOTE, Patch::Some(Box::new(Patch::Set(leaf(&"x")))));
    for err in [rejected(&delta), rejected_by_tree(&delta)] {
        assert_eq!(
            err.kind(),
            &ApplyErrorKind::Shape {
                expected: "some",
                found: "none"
            }
        );
        assert_eq!(err.path(), &[PathStep::Field(NOTE)]);
    }
}

#[test]
fn a_missing_map_key_is_rejected() {
    let delta = one_field(
        PREFS,
        Patch::Map(vec![MapOp::Remove {
            key: key(&"absent"),
        }]),
    );
    for err in [rejected(&delta), rejected_by_tree(&delta)] {
        assert_eq!(err.kind(), &ApplyErrorKind::MissingKey);
        assert_eq!(
            err.path(),
            &[PathStep::Field(PREFS), PathStep::Key(key(&"absent"))]
        );
    }
}

#[test]
fn truncated_bytes_are_rejected() {
    let mut t = Tracked::new(shop());
    t.edit().cart().push(item(1000));
    let bytes = t.take_delta().to_bytes();
    assert!(matches!(
        Delta::from_bytes(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));

    // A leaf whose value encoding is cut short.
    let name = codec::encode(&"Grace");
    let err = rejected(&one_field(
        NAME,
        Patch::Set(Value::Leaf(name[..name.len() - 1].to_vec())),
    ));
    assert!(
        matches!(err.kind(), ApplyErrorKind::Decode(DecodeError::Leaf(_))),
        "{err:?}"
    );
    assert_eq!(err.path(), &[PathStep::Field(NAME)]);
}

#[test]
fn a_leaf_not_in_canonical_form_is_rejected() {
    // `qty: 1` written with bincode's 3-byte u16 form instead of one byte:
    // bincode reads it, but the typed value would re-encode it differently
    // from the bytes a store node keeps.
    let mut bytes = codec::encode(&"SKU-0000");
    bytes.extend([251, 1, 0]);
    bytes.extend(codec::encode(&100u64));
    let delta = one_field(
        CART,
        Patch::Seq(vec![SeqOp::Set {
            index: 0,
            patch: Patch::Set(Value::Leaf(bytes)),
        }]),
    );
    let err = rejected(&delta);
    assert!(
        matches!(err.kind(), ApplyErrorKind::Decode(DecodeError::Leaf(_))),
        "{err:?}"
    );
    assert_eq!(err.path(), &[PathStep::Field(CART), PathStep::Index(0)]);
}

#[test]
fn a_patch_of_an_element_pushed_by_the_same_patch_is_rejected() {
    let delta = one_field(
        CART,
        Patch::Seq(vec![
            SeqOp::Push(vec![leaf(&item(1000))]),
            SeqOp::Set {
                index: 100,
                patch: Patch::Set(leaf(&item(1001))),
            },
        ]),
    );
    for err in [rejected(&delta), rejected_by_tree(&delta)] {
        assert!(matches!(err.kind(), ApplyErrorKind::Conflict(_)), "{err:?}");
    }
}

#[test]
fn a_remove_of_elements_pushed_by_the_same_patch_applies() {
    let old = shop();
    let delta = one_field(
        CART,
        Patch::Seq(vec![
            SeqOp::Push(vec![leaf(&item(1000)), leaf(&item(1001))]),
            SeqOp::Remove {
                index: 99,
                count: 2,
            },
        ]),
    );
    let mut new = old.clone();
    new.cart.remove(99);
    new.cart.push(item(1001));
    assert_replicates(&old, &new, &delta);
}

#[test]
fn a_failing_field_leaves_every_field_unchanged() {
    let delta = Delta::from_fields(vec![
        (NAME, Patch::Set(leaf(&"Grace"))),
        (
            CART,
            Patch::Seq(vec![SeqOp::Remove {
                index: 500,
                count: 1,
            }]),
        ),
    ]);
    let err = rejected(&delta);
    assert!(matches!(err.kind(), ApplyErrorKind::IndexOutOfRange { .. }));
    rejected_by_tree(&delta);
}

// --- Schema -----------------------------------------------------------------------

#[test]
fn the_schema_lists_every_field_by_id() {
    let schema = Shop::schema();
    assert_eq!(schema.name(), "Shop");
    let fields: Vec<(&str, u16, bool, &str)> = schema
        .fields()
        .iter()
        .map(|f| (f.name, f.id, f.mutable, f.type_name))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("user_id", 0, false, "u64"),
            ("name", 1, true, "String"),
            ("visits", 2, true, "u32"),
            ("cart", 3, true, "Vec<Item>"),
            ("blob", 4, true, "Vec<u8>"),
            ("prefs", 5, true, "BTreeMap<String,String>"),
            ("tags", 6, true, "HashSet<String>"),
            ("note", 7, true, "Option<String>"),
            ("profile", 8, true, "Profile"),
            ("backup_profile", 9, true, "Option<Profile>"),
            ("accounts", 10, true, "HashMap<String,Profile>"),
            ("counter", 20, true, "u64"),
        ]
    );
    assert_eq!(
        schema.mutable_ids(),
        &[
            NAME,
            VISITS,
            CART,
            BLOB,
            PREFS,
            TAGS,
            NOTE,
            PROFILE,
            BACKUP_PROFILE,
            ACCOUNTS,
            COUNTER
        ]
    );
    assert_eq!(schema.field(COUNTER).map(|f| f.name), Some("counter"));
    assert_eq!(schema.field(11), None);

    let nested = Profile::schema();
    assert_eq!(nested.name(), "Profile");
    assert_eq!(nested.mutable_ids(), &[1, 2, 3]);
    assert_eq!(
        nested.field(PROFILE_SINCE).map(|f| (f.name, f.mutable)),
        Some(("since", false))
    );
}

/// Two versions of one application's types: `Inner` gained a field.
mod v1 {
    use session_runtime::Session;

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Inner {
        pub a: u32,
    }

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Outer {
        pub inner: Inner,
        pub n: u32,
    }
}

mod v2 {
    use session_runtime::Session;

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Inner {
        pub a: u32,
        pub b: u32,
    }

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Outer {
        pub inner: Inner,
        pub n: u32,
    }
}

/// The same types as `v1`, compiled again.
mod v1_again {
    use session_runtime::Session;

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Inner {
        pub a: u32,
    }

    #[derive(Session, Clone, Debug, PartialEq)]
    pub struct Outer {
        pub inner: Inner,
        pub n: u32,
    }
}

#[test]
fn a_change_in_a_nested_struct_changes_the_outer_fingerprint() {
    // The outer structs look the same field by field...
    let names = |s: &session_runtime::Schema| {
        s.fields()
            .iter()
            .map(|f| (f.name, f.id, f.mutable, f.type_name))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(v1::Outer::schema()), names(v2::Outer::schema()));
    // ...but not through their nested struct.
    assert_ne!(
        v1::Inner::schema().fingerprint(),
        v2::Inner::schema().fingerprint()
    );
    assert_ne!(
        v1::Outer::schema().fingerprint(),
        v2::Outer::schema().fingerprint()
    );
    // Identical definitions have identical fingerprints.
    assert_eq!(
        v1::Outer::schema().fingerprint(),
        v1_again::Outer::schema().fingerprint()
    );
}

// --- Dirty tracking -----------------------------------------------------------------

#[test]
fn a_new_tracked_value_is_clean() {
    let mut t = Tracked::new(shop());
    assert!(!t.is_dirty());
    assert!(t.take_delta().is_empty());
}

#[test]
fn a_write_marks_dirty_and_take_delta_resets() {
    let mut t = Tracked::new(shop());
    *t.edit().visits() += 1;
    assert!(t.is_dirty());
    let delta = t.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), vec![VISITS]);
    assert!(!t.is_dirty());
    assert!(t.take_delta().is_empty());
}

#[test]
fn writing_the_same_value_back_gives_an_empty_delta() {
    let mut t = Tracked::new(shop());
    let same = t.name.clone();
    *t.edit().name() = same;
    t.edit().cart().push(item(1000));
    t.edit().cart().pop();
    assert!(
        t.is_dirty(),
        "a write counts even when it restores the value"
    );
    assert!(t.take_delta().is_empty());
    assert!(!t.is_dirty());
}

#[test]
fn only_written_fields_are_diffed_against_their_value_at_first_write() {
    let old = shop();
    let mut t = Tracked::new(old.clone());
    t.edit().cart().push(item(1000));
    t.edit().cart().push(item(1001));
    *t.edit().name() = "Grace".into();
    let delta = t.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), vec![NAME, CART]);
    assert_eq!(
        delta.field(CART),
        Some(&Patch::Seq(vec![SeqOp::Push(vec![
            leaf(&item(1000)),
            leaf(&item(1001))
        ])]))
    );
    assert_replicates(&old, &t, &delta);
}

#[test]
fn the_next_delta_starts_from_the_last_one() {
    let old = shop();
    let mut t = Tracked::new(old.clone());
    *t.edit().visits() += 1;
    let first = t.take_delta();
    t.edit().cart().push(item(1000));
    let second = t.take_delta();
    assert_eq!(second.field_ids().collect::<Vec<_>>(), vec![CART]);
    let mut replica = old;
    replica.apply(&first).expect("first applies");
    replica.apply(&second).expect("second applies");
    assert_eq!(replica, *t);
}

// --- Delta sizes for the reference cases ----------------------------------------------

/// The three detectors' deltas for an edit of `shop()`, each checked to
/// replicate: `[take_delta, diff, binary_diff]`.
fn deltas(edit: impl FnOnce(&mut Tracked<Shop>)) -> [Delta; 3] {
    let old = shop();
    let mut t = Tracked::new(old.clone());
    edit(&mut t);
    let tracked = t.take_delta();
    let new = t.into_inner();
    let graph = new.diff(&old);
    let binary = new.binary_diff(&old.binary_benchmark());
    for d in [&tracked, &graph, &binary] {
        assert_replicates(&old, &new, d);
    }
    [tracked, graph, binary]
}

fn sizes(deltas: &[Delta; 3]) -> [usize; 3] {
    deltas.each_ref().map(|d| d.to_bytes().len())
}

/// An element's size as a leaf of the tree.
fn leaf_len(it: &Item) -> usize {
    leaf(it).encoded_len()
}

#[test]
fn a_scalar_change_costs_at_most_8_bytes() {
    let [tracked, graph, binary] = sizes(&deltas(|t| *t.edit().visits() += 1));
    assert!(tracked <= 8, "take_delta: {tracked} B");
    assert!(graph <= 8, "diff: {graph} B");
    assert!(binary <= 8, "binary_diff: {binary} B");
}

#[test]
fn one_element_change_costs_at_most_the_element_plus_4_bytes() {
    let mut changed = item(50);
    changed.qty = 3;
    let [tracked, graph, binary] = sizes(&deltas(|t| t.edit().cart()[50].qty = 3));
    let bound = leaf_len(&changed) + 4;
    assert!(tracked <= bound, "take_delta: {tracked} B > {bound} B");
    assert!(graph <= bound, "diff: {graph} B > {bound} B");
    assert!(binary <= bound, "binary_diff: {binary} B > {bound} B");
}

#[test]
fn a_push_costs_at_most_the_item_plus_4_bytes() {
    let [tracked, graph, _] = sizes(&deltas(|t| t.edit().cart().push(item(1000))));
    let bound = leaf_len(&item(1000)) + 4;
    assert!(tracked <= bound, "take_delta: {tracked} B > {bound} B");
    assert!(graph <= bound, "diff: {graph} B > {bound} B");
}

#[test]
fn a_remove_costs_at_most_6_bytes() {
    let [tracked, graph, _] = sizes(&deltas(|t| {
        t.edit().cart().remove(10);
    }));
    assert!(tracked <= 6, "take_delta: {tracked} B");
    assert!(graph <= 6, "diff: {graph} B");
}

#[test]
fn a_64_byte_run_in_a_4_kib_blob_costs_at_most_72_bytes() {
    let [tracked, graph, binary] = sizes(&deltas(|t| t.edit().blob()[2000..2064].fill(0xee)));
    assert!(tracked <= 72, "take_delta: {tracked} B");
    assert!(graph <= 72, "diff: {graph} B");
    assert!(binary <= 72, "binary_diff: {binary} B");
}
