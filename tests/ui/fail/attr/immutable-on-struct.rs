use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[immutable]
struct Shop {
    user_id: u64,
}

fn main() {}
