// `serialize(a)` makes `T: Serialize` part of the signature: callers must pass one.
#[derive(Debug)]
struct NotSerialize;

#[weave::op(serialize(a))]
fn add<T: std::fmt::Debug>(a: T) -> usize {
    format!("{a:?}").len()
}

fn main() {
    add(NotSerialize);
}
