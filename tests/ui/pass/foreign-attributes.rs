//! Other attributes (docs, serde's, lints) on the struct and its fields sit
//! next to ours; `#[mutable]` may be written out; the struct may be public
//! and have a where clause.

use session_runtime::{Session, Tracked};

/// A documented session.
#[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shop<T>
where
    T: Default,
{
    /// The owner, fixed at creation.
    #[immutable]
    #[serde(rename = "owner")]
    pub user_id: u64,
    /// Explicitly mutable.
    #[mutable]
    #[serde(default)]
    pub display_name: String,
    #[allow(dead_code)]
    #[session(id = 9)]
    #[mutable]
    pub extra: T,
}

fn main() {
    let start = Shop {
        user_id: 1,
        display_name: "a".into(),
        extra: 5u8,
    };
    let mut tracked = Tracked::new(start.clone());
    tracked.edit().display_name().push('b');
    *tracked.edit().extra() = 6;
    let delta = tracked.take_delta();
    assert_eq!(delta.field_ids().collect::<Vec<_>>(), [1, 9]);
    let mut copy = start;
    copy.apply(&delta).unwrap();
    assert_eq!(copy, *tracked);
}
