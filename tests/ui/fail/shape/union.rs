use session_runtime::Session;

#[derive(Session)]
union Shop {
    visits: u32,
    code: u64,
}

fn main() {}
