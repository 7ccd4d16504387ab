use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[session(id = 1)]
    name: String,
    visits: u32,
}

fn main() {}
