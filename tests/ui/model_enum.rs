#[derive(weave::Model)]
enum Choice {
    A,
    B,
}

fn main() {
    let _ = [Choice::A, Choice::B];
}
