//! # weave-ui-tests
//!
//! What the browser tests of the web UI stand on:
//!
//! - [`browser`]: Debian's headless Chromium driven over WebDriver (`chromedriver` on a free
//!   loopback port, a fresh profile, stopped with its whole process group), with the page's
//!   console errors;
//! - [`fixture`]: the store the tests read — the real codegen pipeline (reference solutions on
//!   all 164 HumanEval problems, an LLM stand-in that writes wrong code, errors and a hostile
//!   `<script>` value, and a two-trial run) plus [`synth`]etic large data — built once per
//!   version and cached under `target/`, plus [`python`]'s session;
//! - [`llm`]: the loopback LLM stand-in the pipeline calls;
//! - [`synth`]: large and hostile data logged through the store: a 10,000-call trace, two
//!   1,000-row evaluation runs, 1 MiB values;
//! - [`python`]: traces logged from Python (the recorded `weave==0.54` session replayed over
//!   HTTP).
//!
//! The tests are in `tests/`; `cargo nextest run -p weave-ui-tests` runs them (Chromium and
//! chromedriver must be installed: `apt-get install chromium chromium-driver`).

pub mod browser;
pub mod fixture;
pub mod llm;
pub mod python;
pub mod synth;

use std::path::PathBuf;

/// `../shared` of the checkout (or `$WEAVE_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("WEAVE_SHARED_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The cargo target directory of this build (`$CARGO_TARGET_DIR`, else the one the test
/// binary runs from).
pub fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(t);
    }
    // target/<profile>/deps/<test binary>
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent()?.parent().map(PathBuf::from))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}
