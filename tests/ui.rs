//! Compile tests of `#[derive(Session)]`: what it rejects, with which
//! message, and what it accepts.
//!
//! Regenerate the expected compiler output with
//! `TRYBUILD=overwrite cargo test --test ui`, then review every `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/**/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
