//! `#[session(id = N)]` pins a field's id: deltas address fields by id, so
//! reordering the fields keeps old deltas valid.

use session_runtime::{Delta, Session, Tracked};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct V1 {
    #[immutable]
    #[session(id = 0)]
    user_id: u64,
    #[session(id = 1)]
    name: String,
    #[session(id = 7)]
    visits: u32,
}

/// The same session with its fields reordered, a field added at the top,
/// and the ids kept.
#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct V2 {
    #[session(id = 2)]
    added: Vec<String>,
    #[mutable]
    #[session(id = 7)]
    visits: u32,
    #[session(id = 1)]
    name: String,
    #[immutable]
    #[session(id = 0)]
    user_id: u64,
}

/// Pinned and default ids mixed: `b` keeps its position (1), `a` takes 5.
#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Mixed {
    #[session(id = 5)]
    a: u8,
    b: u8,
    #[session(id = 0)]
    c: u8,
}

fn main() {
    let ids = |s: &session_runtime::Schema| {
        s.fields()
            .iter()
            .map(|f| (f.name, f.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(V1::schema()),
        [("user_id", 0), ("name", 1), ("visits", 7)]
    );
    assert_eq!(
        ids(V2::schema()),
        [("user_id", 0), ("name", 1), ("added", 2), ("visits", 7)]
    );
    assert_eq!(ids(Mixed::schema()), [("c", 0), ("b", 1), ("a", 5)]);
    assert_eq!(V1::schema().mutable_ids(), [1, 7]);

    let mut v1 = Tracked::new(V1 {
        user_id: 9,
        name: "ada".into(),
        visits: 1,
    });
    *v1.edit().visits() += 1;
    v1.edit().name().push_str(" lovelace");
    let delta = v1.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), [1, 7]);

    // A delta from V1 applies to V2: same ids, same field types.
    let mut v2 = V2 {
        added: vec![],
        visits: 1,
        name: "ada".into(),
        user_id: 9,
    };
    v2.apply(&Delta::from_bytes(&delta.to_bytes()).unwrap())
        .unwrap();
    assert_eq!(v2.visits, 2);
    assert_eq!(v2.name, "ada lovelace");

    let mut mixed = Tracked::new(Mixed { a: 1, b: 2, c: 3 });
    *mixed.edit().a() = 10;
    *mixed.edit().c() = 30;
    let delta = mixed.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), [0, 5]);
    let mut copy = Mixed { a: 1, b: 2, c: 3 };
    copy.apply(&delta).unwrap();
    assert_eq!(copy, *mixed);
}
