//! The quickstart from the README: track edits to a session, ship only the
//! delta, apply it to a copy.
//!
//! Run with `cargo run --example quickstart`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use session_runtime::{Delta, Session, Tracked};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price_cents: u64,
}

#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    email: String,
    newsletter: bool,
}

#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Shop {
    #[immutable]
    user_id: u64,
    #[mutable]
    name: String,
    #[mutable]
    cart: Vec<Item>,
    #[mutable]
    prefs: BTreeMap<String, String>,
    #[mutable]
    #[session(id = 7)]
    profile: Profile,
    visits: u32,
}

fn main() -> anyhow::Result<()> {
    let shop = Shop {
        user_id: 42,
        name: "Ada".into(),
        cart: (0..100)
            .map(|i| Item {
                sku: format!("SKU-{i:04}"),
                qty: 1,
                price_cents: 100 + i,
            })
            .collect(),
        prefs: BTreeMap::from([("theme".into(), "dark".into())]),
        profile: Profile {
            email: "ada@example.com".into(),
            newsletter: false,
        },
        visits: 0,
    };
    let full = shop.to_bytes();
    let old = shop.clone();

    let mut s = Tracked::new(shop);
    s.edit().cart().push(Item {
        sku: "SKU-0100".into(),
        qty: 2,
        price_cents: 999,
    });
    *s.edit().visits() += 1;
    s.edit().profile().newsletter = true;

    let d: Delta = s.take_delta();
    let bytes = d.to_bytes();
    let mut backup = old.clone();
    backup.apply(&Delta::from_bytes(&bytes)?)?;
    assert_eq!(backup, *s);

    println!(
        "schema {} (fingerprint {:016x})",
        Shop::schema().name(),
        Shop::schema().fingerprint()
    );
    for f in Shop::schema().fields() {
        println!(
            "  id {:>2}  {:<8} {:<9} {}",
            f.id,
            f.name,
            if f.mutable { "mutable" } else { "immutable" },
            f.type_name
        );
    }
    println!(
        "full session: {} bytes; delta of 3 edits: {} bytes",
        full.len(),
        bytes.len()
    );

    // The other two detectors find the same change.
    assert_eq!(s.diff(&old), d);
    let bench = old.binary_benchmark();
    let mut from_binary = old.clone();
    from_binary.apply(&s.binary_diff(&bench))?;
    assert_eq!(from_binary, *s);
    println!(
        "graph diff: {} bytes; binary diff: {} bytes",
        s.diff(&old).encoded_len(),
        s.binary_diff(&bench).encoded_len()
    );
    println!("backup equals primary: {}", backup == *s);
    Ok(())
}
