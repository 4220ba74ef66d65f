//! Compile-fail tests: misuse of the macros is reported at the offending token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass.rs");
    t.compile_fail("ui/op_*.rs");
    t.compile_fail("ui/ops_*.rs");
    t.compile_fail("ui/model_*.rs");
}
