//! Every collection the derive recognises, by bare and by qualified path,
//! nested in each other, edited and replicated.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use session_runtime::{Delta, Patch, Session, Tracked};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Everything {
    vec: Vec<String>,
    deque: VecDeque<u32>,
    hash_map: HashMap<String, u64>,
    btree_map: BTreeMap<u32, String>,
    hash_set: HashSet<String>,
    btree_set: BTreeSet<i64>,
    option: Option<String>,
    bytes: Vec<u8>,
    qualified_deque: std::collections::VecDeque<String>,
    qualified_map: std::collections::HashMap<u8, Vec<u16>>,
    absolute_set: ::std::collections::BTreeSet<String>,
    qualified_vec: std::vec::Vec<Option<u8>>,
    with_hasher: HashMap<String, u8, std::collections::hash_map::RandomState>,
    set_with_hasher: HashSet<u8, std::hash::RandomState>,
    nested: BTreeMap<String, Vec<Option<BTreeSet<u8>>>>,
    optional_bytes: Option<Vec<u8>>,
    qualified_option: core::option::Option<u64>,
}

fn words(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("a reasonably long word, number {i:03}"))
}

fn start() -> Everything {
    Everything {
        vec: vec!["a".into(), "b".into()],
        deque: VecDeque::from([1, 2, 3]),
        hash_map: HashMap::from([("a".into(), 1)]),
        btree_map: BTreeMap::from([(1, "one".into())]),
        hash_set: HashSet::from(["x".into()]),
        btree_set: BTreeSet::from([-1, 1]),
        option: None,
        bytes: vec![0; 256],
        qualified_deque: words(10).collect(),
        qualified_map: (0..10).map(|i| (i, vec![1000; 10])).collect(),
        absolute_set: words(10).collect(),
        qualified_vec: vec![None; 40],
        with_hasher: HashMap::default(),
        set_with_hasher: HashSet::default(),
        nested: BTreeMap::from([("k".into(), vec![None, Some(BTreeSet::from([1]))])]),
        optional_bytes: Some(vec![1, 2, 3]),
        qualified_option: Some(1),
    }
}

fn main() {
    let start = start();
    let mut tracked = Tracked::new(start.clone());
    {
        tracked.edit().vec().insert(1, "between".into());
        tracked.edit().deque().push_front(0);
        tracked.edit().hash_map().insert("b".into(), 2);
        tracked.edit().btree_map().remove(&1);
        tracked.edit().hash_set().insert("y".into());
        tracked.edit().btree_set().remove(&-1);
        *tracked.edit().option() = Some("set".into());
        tracked.edit().bytes()[100] = 7;
        tracked.edit().qualified_deque().push_back("q".into());
        tracked.edit().qualified_map().insert(3, vec![4, 5]);
        tracked.edit().absolute_set().insert("s".into());
        tracked.edit().qualified_vec()[0] = Some(9);
        tracked.edit().with_hasher().insert("h".into(), 1);
        tracked.edit().set_with_hasher().insert(8);
        tracked.edit().nested().get_mut("k").unwrap()[0] = Some(BTreeSet::from([2]));
        tracked.edit().optional_bytes().as_mut().unwrap().push(4);
        *tracked.edit().qualified_option() = None;
    }
    let delta = tracked.take_delta();
    assert_eq!(delta.field_ids().count(), 17);
    // One changed byte in 256 ships as a small splice, not the whole blob.
    assert!(delta.field(7).unwrap().encoded_len() < 32);

    let mut copy = start.clone();
    copy.apply(&Delta::from_bytes(&delta.to_bytes()).unwrap())
        .unwrap();
    assert_eq!(copy, *tracked);
    assert_eq!(tracked.diff(&start), delta);
    let mut from_binary = start.clone();
    from_binary
        .apply(&tracked.binary_diff(&start.binary_benchmark()))
        .unwrap();
    assert_eq!(from_binary, *tracked);
    assert_eq!(
        Everything::from_bytes(&tracked.to_bytes()).unwrap(),
        *tracked
    );

    // Qualified paths are recognised like bare ones: their patches are
    // structural, not the whole field.
    let kind = |id: u16| match delta.field(id) {
        Some(Patch::Seq(_)) => "seq",
        Some(Patch::Map(_)) => "map",
        Some(Patch::Splice(_)) => "splice",
        Some(Patch::Set(_)) => "set",
        other => panic!("unexpected patch of field {id}: {other:?}"),
    };
    assert_eq!(kind(8), "seq"); // std::collections::VecDeque
    assert_eq!(kind(9), "map"); // std::collections::HashMap
    assert_eq!(kind(10), "map"); // ::std::collections::BTreeSet
    assert_eq!(kind(11), "seq"); // std::vec::Vec
    assert_eq!(kind(7), "splice"); // Vec<u8>
    assert_eq!(
        Everything::schema().field(8).unwrap().type_name,
        "std::collections::VecDeque<String>"
    );
}
