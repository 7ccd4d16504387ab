use session_runtime::Session;

#[derive(Clone, PartialEq, serde::Deserialize)]
struct Secret(u64);

#[derive(Session)]
struct Shop {
    secret: Secret,
}

fn main() {}
