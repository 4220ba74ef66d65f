#[derive(weave::Model, serde::Serialize)]
struct Prompter {
    #[weave(bogus)]
    template: String,
}

fn main() {
    let _ = Prompter { template: String::new() }.template;
}
