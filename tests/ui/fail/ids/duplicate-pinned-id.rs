use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    #[session(id = 3)]
    name: String,
    #[session(id = 3)]
    visits: u32,
}

fn main() {}
