fn keep(out: &u32) -> u32 {
    *out
}

#[weave::op(postprocess_output = keep, postprocess_output = keep)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    add(1, 2);
}
