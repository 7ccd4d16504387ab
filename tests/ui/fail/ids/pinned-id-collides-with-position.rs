use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop {
    name: String,
    #[session(id = 0)]
    visits: u32,
}

fn main() {}
