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

fn main() {
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
