use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[mutable]
struct Shop {
    name: String,
}

fn main() {}
