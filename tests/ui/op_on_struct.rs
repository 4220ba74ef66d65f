#[weave::op]
struct NotAFunction {
    x: u32,
}

fn main() {
    let _ = NotAFunction { x: 1 }.x;
}
