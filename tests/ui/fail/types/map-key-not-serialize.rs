use std::collections::HashMap;

use session_runtime::Session;

#[derive(Clone, PartialEq, Eq, Hash, serde::Deserialize)]
struct Sku(u32);

#[derive(Session)]
struct Shop {
    stock: HashMap<Sku, u32>,
}

fn main() {}
