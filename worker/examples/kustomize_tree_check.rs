//! Builds every kustomization under a tree with the native engine and with `kubectl kustomize`,
//! and reports which outputs are byte-identical.
//! Usage: cargo run -p capstan-worker --example kustomize_tree_check -- <repo-root>
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use capstan_worker::render::kustomize::build;
use capstan_worker::repo_fs::{DirFs, RepoPath};

fn find(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name == ".git" || name == "target" {
            continue;
        }
        if p.is_dir() {
            find(&p, root, out);
        } else if matches!(
            name.as_str(),
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        ) {
            out.push(
                dir.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string(),
            );
        }
    }
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .expect("usage: kustomize_tree_check <repo-root>");
    let root = Path::new(&root).canonicalize().unwrap();
    let mut dirs = Vec::new();
    find(&root, &root, &mut dirs);
    dirs.sort();
    let fs = DirFs::new(&root).unwrap();
    let (mut exact, mut unsupported, mut both_fail, mut differ) = (0, 0, 0, 0);
    for d in &dirs {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(root.join(d))
            .output()
            .unwrap();
        let native = build(&fs, &RepoPath::new(d).unwrap());
        let verdict = match (out.status.success(), native) {
            (true, Ok(n)) if n.yaml.as_bytes() == out.stdout.as_slice() => {
                exact += 1;
                "exact".to_string()
            }
            (true, Ok(n)) => {
                let tag = d.replace('/', "_");
                std::fs::write(format!("/tmp/native-{tag}.yaml"), &n.yaml).unwrap();
                std::fs::write(format!("/tmp/kubectl-{tag}.yaml"), &out.stdout).unwrap();
                differ += 1;
                "DIFFERS".to_string()
            }
            (false, Err(e)) => {
                both_fail += 1;
                format!("both refuse ({e})")
            }
            (_, Err(e @ capstan_worker::render::kustomize::KustomizeError::Unsupported { .. })) => {
                unsupported += 1;
                format!("unsupported: {e}")
            }
            (true, Err(e)) => {
                differ += 1;
                format!("DIFFERS: native failed: {e}")
            }
            (false, Ok(_)) => {
                differ += 1;
                "DIFFERS: kustomize refuses, native built".to_string()
            }
        };
        println!("{d}: {verdict}");
    }
    println!(
        "{} kustomizations: {exact} exact, {both_fail} refused by both, {unsupported} unsupported, {differ} differ",
        dirs.len()
    );
}
