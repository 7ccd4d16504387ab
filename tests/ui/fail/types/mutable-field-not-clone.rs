use session_runtime::Session;

#[derive(PartialEq, serde::Serialize, serde::Deserialize)]
struct Basket {
    items: Vec<String>,
}

#[derive(Session)]
struct Shop {
    basket: Basket,
}

fn main() {}
