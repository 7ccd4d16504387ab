//! A generic session, used with concrete type arguments.

use session_runtime::{Delta, Session, Tracked};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Wrapper<T> {
    inner: T,
    list: Vec<T>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    sku: String,
    qty: u32,
}

fn main() {
    // T = u32
    let start = Wrapper {
        inner: 1u32,
        list: vec![1, 2, 3],
    };
    let mut tracked = Tracked::new(start.clone());
    *tracked.edit().inner() = 7;
    tracked.edit().list().push(4);
    tracked.edit().list()[0] = 10;
    assert!(tracked.is_dirty());
    let delta = tracked.take_delta();
    assert!(!tracked.is_dirty());
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), [0, 1]);
    let mut copy = start.clone();
    copy.apply(&Delta::from_bytes(&delta.to_bytes()).unwrap())
        .unwrap();
    assert_eq!(copy, *tracked);
    assert_eq!(tracked.diff(&start), delta);

    // T = a serde struct, replaced whole
    let start = Wrapper {
        inner: Item {
            sku: "tea".into(),
            qty: 1,
        },
        list: vec![],
    };
    let mut tracked = Tracked::new(start.clone());
    tracked.edit().inner().qty = 2;
    tracked.edit().list().push(Item {
        sku: "jam".into(),
        qty: 3,
    });
    let delta = tracked.take_delta();
    let mut copy = start;
    copy.apply(&delta).unwrap();
    assert_eq!(copy, *tracked);

    // The two instantiations are distinct schemas with one name.
    assert_eq!(Wrapper::<u32>::schema().name(), "Wrapper");
    assert_eq!(Wrapper::<Item>::schema().fields().len(), 2);
    let bytes = tracked.to_bytes();
    assert_eq!(Wrapper::<Item>::from_bytes(&bytes).unwrap(), *tracked);
}
