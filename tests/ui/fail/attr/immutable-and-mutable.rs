use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[immutable]
    #[doc = "Fixed at creation."]
    #[mutable]
    user_id: u64,
}

fn main() {}
