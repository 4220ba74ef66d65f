//! Every supported shape compiles without warnings of its own.
#![deny(warnings)]

#[derive(weave::Model, serde::Serialize)]
struct Prompter {
    template: String,
    #[weave(skip)]
    cache: Vec<u8>,
}

#[weave::ops]
impl Prompter {
    #[weave::op]
    fn predict(&self, q: &str) -> String {
        format!("{}{q}{}", self.template, self.cache.len())
    }

    #[weave::op(name = "Prompter.tweak", skip(by))]
    fn tweak(&mut self, by: &str) {
        self.template.push_str(by);
    }
}

#[weave::op(name = "renamed", skip_all)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[weave::op]
async fn later(x: u32) -> Result<u32, String> {
    Ok(x)
}

#[weave::op]
fn evens(n: u32) -> impl Iterator<Item = u32> {
    (0..n).filter(|x| x % 2 == 0)
}

type Fallible<T> = Result<T, std::io::Error>;

fn title(inputs: &serde_json::Map<String, serde_json::Value>) -> String {
    format!("{} inputs", inputs.len())
}

fn hide(
    mut inputs: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    inputs.remove("b");
    inputs
}

fn length(out: &[u32]) -> usize {
    out.len()
}

#[weave::op(display_name = title, postprocess_inputs = hide, postprocess_output = length)]
fn hooked(a: u32, b: u32) -> Fallible<Vec<u32>> {
    Ok(vec![a, b])
}

#[weave::op(display_name = "Generic", serialize(x, ys))]
async fn generic<T: Clone>(x: T, ys: &impl IntoIterator<Item = u32>) -> T {
    let _ = ys;
    x
}

fn main() {
    let _ = hooked(1, 2);
    let _ = generic(1u8, &vec![2u32]);
    let _ = weave::call(|| add(1, 2));
    let _ = weave::attributes(serde_json::json!({"k": 1}), || add(1, 2));
    let mut p = Prompter {
        template: "t".into(),
        cache: Vec::new(),
    };
    p.tweak("!");
    let _ = p.predict("q");
    let _ = add(1, 2);
    let _ = later(3);
    let _ = evens(4).count();
}
