//! Types written inside parentheses get the same strategy as without.
#![allow(unused_parens)]

use session_runtime::{Patch, Session, Tracked};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Inner {
    a: u32,
    b: String,
}

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    count: (u32),
    names: (Vec<String>),
    nested: Vec<(Inner)>,
    maybe: Option<((String))>,
    bytes: Vec<(u8)>,
    map: (std::collections::BTreeMap<(String), (Inner)>),
}

fn main() {
    let inner = |a| Inner {
        a,
        b: "a long enough string to matter".into(),
    };
    let start = Shop {
        count: 1,
        names: (0..10).map(|i| format!("name number {i}")).collect(),
        nested: (0..5).map(inner).collect(),
        maybe: Some("x".into()),
        bytes: vec![0; 128],
        map: (0..5).map(|i| (i.to_string(), inner(i))).collect(),
    };
    let mut tracked = Tracked::new(start.clone());
    *tracked.edit().count() += 1;
    tracked.edit().names().push("one more".into());
    tracked.edit().nested()[2].a = 99;
    tracked.edit().maybe().as_mut().unwrap().push('y');
    tracked.edit().bytes()[64] = 1;
    tracked.edit().map().get_mut("3").unwrap().a = 33;
    let delta = tracked.take_delta();

    assert!(matches!(delta.field(1), Some(Patch::Seq(_))));
    assert!(matches!(delta.field(2), Some(Patch::Seq(_))));
    // `Vec<(u8)>` is a byte string, like `Vec<u8>`.
    assert!(matches!(delta.field(4), Some(Patch::Splice(_))));
    assert!(matches!(delta.field(5), Some(Patch::Map(_))));

    let mut copy = start.clone();
    copy.apply(&delta).unwrap();
    assert_eq!(copy, *tracked);
    assert_eq!(tracked.diff(&start), delta);
}
