use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[mutable]
    #[immutable]
    user_id: u64,
}

fn main() {}
