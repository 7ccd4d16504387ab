use session_runtime::Session;

#[derive(Session)]
enum Shop {
    Open { name: String },
    Closed,
}

fn main() {}
