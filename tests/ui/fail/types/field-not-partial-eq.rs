use session_runtime::Session;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Theme {
    dark: bool,
}

#[derive(Session)]
struct Shop {
    theme: Theme,
}

fn main() {}
