#[derive(weave::Model, serde::Serialize)]
struct Echo {
    prefix: String,
}

#[weave::ops]
impl Echo {
    #[weave::op(foo)]
    fn predict(&self, input: &str) -> String {
        format!("{}{input}", self.prefix)
    }
}

fn main() {
    let _ = Echo { prefix: String::new() }.predict("x");
}
