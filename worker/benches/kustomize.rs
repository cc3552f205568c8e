//! Native kustomize engine vs `kubectl kustomize`, in one run: median time per build over the
//! conformance suite and over a generated 200-app monorepo, the ratio, and peak memory.
//! Run: `cargo bench -p capstan-worker --bench kustomize` (measures; asserts nothing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_worker::render::kustomize::build;
use capstan_worker::repo_fs::{DirFs, RepoPath};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Median wall time and largest max-RSS (KiB) of `kubectl kustomize` over `dirs`.
fn kubectl(dirs: &[PathBuf]) -> Option<(Duration, u64)> {
    let mut times = Vec::new();
    let mut peak = 0;
    for d in dirs {
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", "kubectl", "kustomize"])
            .arg(d)
            .output()
            .ok()?;
        times.push(t.elapsed());
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(kib) = err
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
    }
    Some((median(times), peak))
}

/// Median native build time; also returns how many builds failed (should be none).
fn native(root: &Path, dirs: &[RepoPath], rounds: usize) -> (Duration, usize) {
    let fs = DirFs::new(root).expect("bench root");
    let mut times = Vec::new();
    let mut failed = 0;
    for round in 0..rounds {
        for d in dirs {
            let t = Instant::now();
            let out = std::hint::black_box(build(&fs, d));
            times.push(t.elapsed());
            if round == 0 && out.is_err() {
                failed += 1;
            }
        }
    }
    (median(times), failed)
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, s).expect("write");
}

/// 200 apps, each a base plus an overlay with namespace, prefix, labels, images, a generator
/// and a patch.
fn monorepo(root: &Path) -> Vec<String> {
    let mut apps = Vec::new();
    for i in 0..200 {
        let base = root.join(format!("apps/app{i}/base"));
        write(
            &base.join("kustomization.yaml"),
            "resources:\n- deploy.yaml\n- service.yaml\nconfigMapGenerator:\n- name: cfg\n  literals:\n  - mode=base\n",
        );
        write(
            &base.join("deploy.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: app{i}\n  template:\n    metadata:\n      labels:\n        app: app{i}\n    spec:\n      containers:\n      - name: main\n        image: registry.example.com/app{i}:1.0.0\n        envFrom:\n        - configMapRef:\n            name: cfg\n        ports:\n        - containerPort: 8080\n          name: http\n"
            ),
        );
        write(
            &base.join("service.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: app{i}\nspec:\n  selector:\n    app: app{i}\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"
            ),
        );
        let ov = root.join(format!("apps/app{i}/overlays/prod"));
        write(
            &ov.join("kustomization.yaml"),
            &format!(
                "namespace: team{}\nnamePrefix: prod-\nlabels:\n- pairs:\n    env: prod\n  includeSelectors: true\nimages:\n- name: registry.example.com/app{i}\n  newTag: 2.0.{i}\nresources:\n- ../../base\nconfigMapGenerator:\n- name: cfg\n  behavior: merge\n  literals:\n  - mode=prod\npatches:\n- path: replicas.yaml\n",
                i % 10
            ),
        );
        write(
            &ov.join("replicas.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  replicas: 3\n"
            ),
        );
        apps.push(format!("apps/app{i}/overlays/prod"));
    }
    apps
}

fn report(label: &str, n: usize, nat: Duration, kc: Option<(Duration, u64)>) {
    match kc {
        Some((k, kpeak)) => println!(
            "{label}: {n} builds; median per build: native {:.3} ms, kubectl kustomize {:.1} ms, ratio {:.0}x; kubectl peak RSS {} MiB",
            nat.as_secs_f64() * 1e3,
            k.as_secs_f64() * 1e3,
            k.as_secs_f64() / nat.as_secs_f64().max(1e-9),
            kpeak / 1024
        ),
        None => println!(
            "{label}: {n} builds; median per build: native {:.3} ms (kubectl not available)",
            nat.as_secs_f64() * 1e3
        ),
    }
}

fn main() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize/cases");
    let mut suite: Vec<String> = std::fs::read_dir(&cases)
        .expect("cases")
        .flatten()
        .filter(|e| e.path().join("expected.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    suite.sort();
    let suite_rel: Vec<RepoPath> = suite
        .iter()
        .map(|s| RepoPath::new(s).expect("path"))
        .collect();
    let (nat, failed) = native(&cases, &suite_rel, 5);
    let kc = kubectl(&suite.iter().map(|s| cases.join(s)).collect::<Vec<_>>());
    report("conformance suite", suite.len(), nat, kc);
    println!("conformance suite: native build failures: {failed}");

    let tmp = std::env::temp_dir().join(format!("capstan-kustomize-bench-{}", std::process::id()));
    let apps = monorepo(&tmp);
    let apps_rel: Vec<RepoPath> = apps
        .iter()
        .map(|s| RepoPath::new(s).expect("path"))
        .collect();
    let t = Instant::now();
    let (nat, failed) = native(&tmp, &apps_rel, 3);
    let all = t.elapsed();
    println!("200-app monorepo: native build failures: {failed}");
    let kc = kubectl(&apps.iter().map(|s| tmp.join(s)).collect::<Vec<_>>());
    report("200-app monorepo", apps.len(), nat, kc);
    println!(
        "native: all 200 apps x3 rounds in {:.0} ms; native peak RSS of this process {} MiB",
        all.as_secs_f64() * 1e3,
        peak_rss_kib() / 1024
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
