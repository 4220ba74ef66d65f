// `postprocess_output` takes a reference to the output (the `Ok` value of a `Result`).
fn shorten(out: &String) -> usize {
    out.len()
}

#[weave::op(postprocess_output = shorten)]
fn add(a: u32, b: u32) -> Result<u32, std::io::Error> {
    Ok(a + b)
}

fn main() {
    let _ = add(1, 2);
}
