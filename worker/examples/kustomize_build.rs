//! Prints the native engine's build of a kustomization directory, like `kubectl kustomize DIR`.
//! Usage: cargo run -p capstan-worker --example kustomize_build -- <repo-root> [dir-in-repo]
use capstan_worker::render::kustomize::build;
use capstan_worker::repo_fs::{DirFs, RepoPath};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(root), dir) = (args.next(), args.next()) else {
        eprintln!("usage: kustomize_build <repo-root> [dir-in-repo]");
        return std::process::ExitCode::from(2);
    };
    let result = DirFs::new(&root).map_err(|e| e.to_string()).and_then(|fs| {
        let d = RepoPath::new(dir.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
        build(&fs, &d).map_err(|e| e.to_string())
    });
    match result {
        Ok(out) => {
            print!("{}", out.yaml);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
