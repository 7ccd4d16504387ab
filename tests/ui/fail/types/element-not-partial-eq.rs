use std::collections::BTreeMap;

use session_runtime::Session;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Theme {
    dark: bool,
}

#[derive(Session)]
struct Shop {
    themes: BTreeMap<String, Vec<Theme>>,
}

fn main() {}
