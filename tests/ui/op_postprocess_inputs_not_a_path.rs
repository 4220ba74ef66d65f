#[weave::op(postprocess_inputs = "hide")]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    add(1, 2);
}
