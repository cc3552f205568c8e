//! The markdown report builder, with every repository- and cluster-sourced text set to the fuzz
//! input: the comment keeps its structure (one marker, balanced fences and details, nothing
//! mentioned, linked, referenced or commanded outside code) whole and split to a size limit.
#![no_main]

#[path = "../../tests/report_support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod report_support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let evil = String::from_utf8_lossy(data);
    report_support::hostile::assert_safe_whole_and_split(&evil, 4096);
});
