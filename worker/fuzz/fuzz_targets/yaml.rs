//! The YAML loader for untrusted repository text. Whatever it accepts must mean one thing: a
//! document written back out as YAML, as the diffs print it, reads back as the same value, so no
//! input reads one way in Capstan's diff and another in the text the diff shows.
#![no_main]

use capstan_worker::yaml::{parse_documents, parse_single};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = parse_documents(text, "fuzz.yaml") else {
        return;
    };
    for doc in docs {
        let text = yaml_serde::to_string(&doc).expect("a parsed value serializes");
        let again = parse_single(&text, "again.yaml")
            .unwrap_or_else(|e| panic!("its own YAML does not load: {e}\n{text}"));
        assert_eq!(
            again, doc,
            "a value changed on the way through YAML:\n{text}"
        );
    }
});
