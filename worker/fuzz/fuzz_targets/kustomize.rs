//! The kustomization loader and the native kustomize engine. Input: a small tree, as entries
//! separated by NUL bytes, each a path on its first line and the file's content after it; the
//! root kustomization is built. A build that succeeds must print YAML Capstan itself can load,
//! read only files of the tree, and be deterministic (the same tree renders the same bytes).
#![no_main]

use capstan_worker::render::kustomize::build;
use capstan_worker::repo_fs::{MemFs, RepoPath};
use capstan_worker::yaml::parse_documents;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

fuzz_target!(|data: &[u8]| {
    let mut fs = MemFs::new();
    let mut written = BTreeSet::new();
    for entry in data.split(|b| *b == 0).take(16) {
        let (path, content) = match entry.iter().position(|b| *b == b'\n') {
            Some(at) => (&entry[..at], &entry[at + 1..]),
            None => (entry, &[][..]),
        };
        let Ok(path) = std::str::from_utf8(path) else {
            continue;
        };
        // A path the tree refuses is simply not in it.
        let Ok(path) = RepoPath::new(path) else {
            continue;
        };
        if fs.insert(path.as_str(), content).is_ok() {
            written.insert(path);
        }
    }
    let root = RepoPath::root();
    let Ok(out) = build(&fs, &root) else {
        return;
    };
    if let Err(e) = parse_documents(&out.yaml, "output") {
        panic!(
            "the engine printed YAML that does not load: {e}\n{}",
            out.yaml
        );
    }
    for input in &out.inputs {
        assert!(
            written.contains(input),
            "read {input}, which is not a file of the tree {written:?}"
        );
    }
    let again = build(&fs, &root).expect("the same tree built once");
    assert_eq!(again.yaml, out.yaml, "two builds of one tree differ");
});
