use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[mutable]
    #[mutable]
    name: String,
}

fn main() {}
