//! `codegen-pipeline`: evaluates an LLM code generator on HumanEval.
fn main() {}
