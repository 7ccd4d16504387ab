//! A session whose fields are all immutable: its write proxy has no
//! methods, it is never dirty, and a delta that patches it is rejected.

use session_runtime::{codec, ApplyErrorKind, Delta, Patch, Session, Tracked, Value};

#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Login {
    #[immutable]
    user_id: u64,
    #[immutable]
    created_at: String,
}

/// No fields at all is allowed too.
#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Empty {}

fn main() {
    let login = Login {
        user_id: 1,
        created_at: "2024-01-01".into(),
    };
    let mut tracked = Tracked::new(login.clone());
    let _proxy = tracked.edit();
    assert!(!tracked.is_dirty());
    assert!(tracked.take_delta().is_empty());
    assert!(tracked.diff(&login).is_empty());
    assert!(tracked.binary_diff(&login.binary_benchmark()).is_empty());
    assert_eq!(Login::schema().mutable_ids(), [] as [u16; 0]);
    assert_eq!(Login::from_bytes(&login.to_bytes()).unwrap(), login);

    let mut copy = login.clone();
    copy.apply(&Delta::new()).unwrap();
    assert_eq!(copy, login);
    let forged = Delta::from_fields(vec![(0, Patch::Set(Value::Leaf(codec::encode(&5u64))))]);
    let err = copy.apply(&forged).unwrap_err();
    assert!(matches!(
        err.kind(),
        ApplyErrorKind::ImmutableField { id: 0 }
    ));
    assert_eq!(copy, login);

    let mut empty = Tracked::new(Empty {});
    let _proxy = empty.edit();
    assert!(empty.take_delta().is_empty());
    assert_eq!(Empty::from_bytes(&Empty {}.to_bytes()).unwrap(), Empty {});
}
