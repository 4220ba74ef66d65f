#[weave::op(skip(a), serialize(a))]
fn add<T: std::fmt::Debug>(a: T) -> usize {
    format!("{a:?}").len()
}

fn main() {
    add(1);
}
