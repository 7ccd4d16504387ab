use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[immutable = 1]
    user_id: u64,
}

fn main() {}
