//! Sessions inside sessions: directly, and inside `Vec`, `Option` and
//! `HashMap`. A small change deep inside ships as a patch of that field,
//! not as the whole nested struct.

use std::collections::HashMap;

use session_runtime::{Patch, Session, Tracked};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Address {
    street: String,
    city: String,
}

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    #[immutable]
    email: String,
    bio: String,
    newsletter: bool,
    address: Address,
}

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    main: Profile,
    history: Vec<Profile>,
    backup: Option<Profile>,
    by_name: HashMap<String, Profile>,
}

fn profile(name: &str) -> Profile {
    Profile {
        email: format!("{name}@example.com"),
        bio: "x".repeat(200),
        newsletter: false,
        address: Address {
            street: "1 Long Street Name".into(),
            city: "Springfield".into(),
        },
    }
}

fn main() {
    let start = Account {
        main: profile("ada"),
        history: vec![profile("a"), profile("b")],
        backup: Some(profile("c")),
        by_name: HashMap::from([("d".to_string(), profile("d"))]),
    };
    let mut tracked = Tracked::new(start.clone());
    tracked.edit().main().address.city = "Shelbyville".into();
    tracked.edit().history()[1].newsletter = true;
    tracked.edit().backup().as_mut().unwrap().newsletter = true;
    tracked.edit().by_name().get_mut("d").unwrap().newsletter = true;

    let delta = tracked.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The nested profile is patched field by field (address, then city).
    match delta.field(0) {
        Some(Patch::Record(fields)) => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].0, 3);
        }
        other => panic!("expected a record patch of `main`, got {other:?}"),
    }
    // Each change is far smaller than the profile it is in.
    assert!(delta.encoded_len() < profile("z").to_bytes().len());

    for received in [start.clone()] {
        let mut copy = received;
        copy.apply(&delta).unwrap();
        assert_eq!(copy, *tracked);
    }
    // The other detectors agree.
    assert_eq!(tracked.diff(&start), delta);
    let mut from_binary = start.clone();
    from_binary
        .apply(&tracked.binary_diff(&start.binary_benchmark()))
        .unwrap();
    assert_eq!(from_binary, *tracked);

    // Replacing a nested struct whose immutable field differs ships it whole.
    let mut tracked = Tracked::new(start.clone());
    *tracked.edit().main() = profile("eve");
    let delta = tracked.take_delta();
    assert!(matches!(delta.field(0), Some(Patch::Set(_))));
    let mut copy = start;
    copy.apply(&delta).unwrap();
    assert_eq!(copy, *tracked);
}
