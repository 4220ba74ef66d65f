#[weave::op(display_name = "  ")]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    add(1, 2);
}
