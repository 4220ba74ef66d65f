// `postprocess_inputs` takes and returns the inputs as a JSON map.
fn hide(inputs: &serde_json::Map<String, serde_json::Value>) -> usize {
    inputs.len()
}

#[weave::op(postprocess_inputs = hide)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    add(1, 2);
}
