use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shop(String, u32);

fn main() {}
