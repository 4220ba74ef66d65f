#[derive(weave::Model)]
struct Pair(u32, String);

fn main() {
    let _ = Pair(1, String::new());
}
