use session_runtime::{Session, Tracked};

#[derive(Session)]
struct Shop {
    #[immutable]
    user_id: u64,
    name: String,
}

fn reassign(tracked: &mut Tracked<Shop>) {
    *tracked.edit().user_id() = 5;
}

fn main() {}
