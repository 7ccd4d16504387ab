use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[session(id = 1)]
struct Shop {
    name: String,
}

fn main() {}
