// A display-name function takes the captured inputs (`&serde_json::Map`) and returns a String.
fn title(a: u32) -> String {
    a.to_string()
}

#[weave::op(display_name = title)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    add(1, 2);
}
