use session_runtime::Session;

#[derive(Session, Clone, PartialEq, serde::Serialize)]
struct Shop<'a> {
    name: &'a str,
}

fn main() {}
