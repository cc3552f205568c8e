//! Real-world fidelity runner: builds every kustomization under one or more directory trees with
//! the native engine (in process) and with `kubectl kustomize` (the oracle), and reports per
//! kustomization whether the engine's output is byte-identical ("exact"), holds the same documents
//! in another order or formatting ("same-docs"), differs ("WRONG"), was refused as unsupported
//! ("refused", with the feature) or failed where kustomize succeeds ("errored"). Kustomizations
//! kustomize itself cannot build offline (remote bases, missing files, helm) are "oracle-failed"
//! and do not count. Totals, refusals by feature and the per-build timing of both engines close
//! the report.
//!
//! Usage: cargo run --release -p capstan-worker --example kustomize_corpus -- [--out DIR]
//!        [--oracle-cache DIR] [--timeout SECS] DIR...
//! Each DIR is the sandbox root for the engine (files outside it are refused, as in a repository).
//! `--out DIR` writes both outputs of every differing build there for inspection.
//! `--oracle-cache DIR` keeps kubectl's answers (output or error, and its time) between runs, so a
//! re-run after an engine fix only rebuilds with the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use capstan_worker::render::kustomize::{KustomizeError, build};
use capstan_worker::repo_fs::{DirFs, RepoPath};

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && name != ".git" {
            find(&e.path(), out);
        } else if ft.is_file() && KUSTOMIZATION_NAMES.contains(&name.as_str()) {
            out.push(dir.to_path_buf());
        }
    }
}

/// `oracle`, remembered in `cache` (one file per kustomization: `ok`/`err`, the time, the text).
fn cached_oracle(
    cache: Option<&Path>,
    dir: &Path,
    timeout: Duration,
) -> (Result<Vec<u8>, String>, Duration) {
    let Some(cache) = cache else {
        return oracle(dir, timeout);
    };
    let key = cache.join(dir.to_string_lossy().replace('/', "%"));
    if let Ok(b) = std::fs::read(&key)
        && let Some((head, body)) =
            b.split_at_checked(b.iter().position(|&c| c == b'\n').unwrap_or(b.len()))
        && let Some((status, micros)) = std::str::from_utf8(head)
            .ok()
            .and_then(|h| h.split_once(' '))
        && let Ok(micros) = micros.parse::<u64>()
    {
        let body = body.get(1..).unwrap_or_default().to_vec();
        let t = Duration::from_micros(micros);
        return match status {
            "ok" => (Ok(body), t),
            _ => (Err(String::from_utf8_lossy(&body).into_owned()), t),
        };
    }
    let (res, t) = oracle(dir, timeout);
    let mut rec = match &res {
        Ok(out) => format!("ok {}\n", t.as_micros())
            .into_bytes()
            .into_iter()
            .chain(out.iter().copied())
            .collect::<Vec<u8>>(),
        Err(e) => format!("err {}\n{e}", t.as_micros()).into_bytes(),
    };
    rec.shrink_to_fit();
    let _ = std::fs::write(&key, rec);
    (res, t)
}

/// Runs `kubectl kustomize dir` with a deadline and no usable network (proxies point nowhere, git
/// never prompts), returning stdout on success or the first line of stderr.
fn oracle(dir: &Path, timeout: Duration) -> (Result<Vec<u8>, String>, Duration) {
    let start = Instant::now();
    // Corpus trees are other people's files: a folder named like a flag stays a positional, and
    // kubectl sees none of this process's environment beyond PATH.
    let child = Command::new("kubectl")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .arg("kustomize")
        .arg("--")
        .arg(dir)
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (Err(format!("spawn kubectl: {e}")), start.elapsed()),
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    let elapsed = start.elapsed();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => (Ok(out), elapsed),
        Some(_) => {
            let msg = String::from_utf8_lossy(&err);
            let line = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            (Err(line.chars().take(200).collect()), elapsed)
        }
        None => (Err("timed out".into()), elapsed),
    }
}

enum Engine {
    Ok(String),
    Err(KustomizeError),
    Panic(String),
    Timeout,
}

/// Builds in process on a worker thread so a hang or a panic is reported, not fatal.
fn engine(root: &Path, rel: &str, timeout: Duration) -> (Engine, Duration) {
    let (tx, rx) = mpsc::channel();
    let root = root.to_path_buf();
    let rel = rel.to_string();
    let start = Instant::now();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            let fs = DirFs::new(&root).expect("corpus root");
            let dir = if rel.is_empty() {
                RepoPath::root()
            } else {
                RepoPath::new(&rel).expect("relative path")
            };
            let t = Instant::now();
            let out = build(&fs, &dir);
            (out, t.elapsed())
        });
        let _ = tx.send(r);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok((Ok(out), t))) => (Engine::Ok(out.yaml), t),
        Ok(Ok((Err(e), t))) => (Engine::Err(e), t),
        Ok(Err(p)) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (Engine::Panic(msg), start.elapsed())
        }
        Err(_) => (Engine::Timeout, start.elapsed()),
    }
}

/// The documents of a stream as canonical JSON text, sorted, so order and formatting do not count.
fn canonical_docs(text: &str) -> Option<Vec<String>> {
    let docs = capstan_worker::yaml::parse_documents(text, "<output>").ok()?;
    let mut v: Vec<String> = docs.iter().map(|d| canonical(d).to_string()).collect();
    v.sort();
    Some(v)
}

fn canonical(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[derive(Default)]
struct Totals {
    exact: usize,
    same_docs: usize,
    wrong: usize,
    refused: BTreeMap<String, usize>,
    errored: usize,
    oracle_failed: usize,
    oracle_failed_engine_built: usize,
    engine_time: Duration,
    kubectl_time: Duration,
    timed: usize,
    ratios: Vec<f64>,
}

const USAGE: &str = "\
usage: kustomize_corpus [--out DIR] [--oracle-cache DIR] [--timeout SECS] DIR...

Builds every kustomization under each DIR with the native engine and with `kubectl kustomize`,
and prints one line per kustomization (exact, same-docs, WRONG, refused, errored, oracle-failed)
and the totals with both engines' timings.

  --out DIR            write both outputs of every differing build into DIR
  --oracle-cache DIR   keep kubectl's answers between runs (a re-run only rebuilds with the engine)
  --timeout SECS       give up on one kubectl build after SECS seconds (default 60)
";

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return;
    }
    let mut args = std::env::args().skip(1);
    let mut roots = Vec::new();
    let mut out_dir: Option<PathBuf> = None;
    let mut oracle_cache: Option<PathBuf> = None;
    let mut timeout = Duration::from_secs(60);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out_dir = Some(PathBuf::from(args.next().expect("--out DIR"))),
            "--oracle-cache" => {
                oracle_cache = Some(PathBuf::from(args.next().expect("--oracle-cache DIR")))
            }
            "--timeout" => {
                timeout = Duration::from_secs(
                    args.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--timeout SECS"),
                )
            }
            flag if flag.starts_with('-') => {
                eprint!("unknown option {flag}\n\n{USAGE}");
                std::process::exit(2);
            }
            _ => roots.push(PathBuf::from(a)),
        }
    }
    if roots.is_empty() {
        eprint!("{USAGE}");
        std::process::exit(2);
    }
    for d in out_dir.iter().chain(oracle_cache.iter()) {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut t = Totals::default();
    for root in &roots {
        let root = match root.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", root.display());
                std::process::exit(2);
            }
        };
        let mut dirs = Vec::new();
        find(&root, &mut dirs);
        for dir in dirs {
            let rel = dir
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let label = format!("{}/{rel}", root.display());
            let (oracle_out, kt) = cached_oracle(oracle_cache.as_deref(), &dir, timeout);
            let (native, et) = engine(&root, &rel, timeout);
            let verdict = match (oracle_out, native) {
                (Err(why), Engine::Ok(_)) => {
                    t.oracle_failed += 1;
                    t.oracle_failed_engine_built += 1;
                    format!("oracle-failed (engine built it): {why}")
                }
                (Err(why), _) => {
                    t.oracle_failed += 1;
                    format!("oracle-failed: {why}")
                }
                (Ok(want), native) => {
                    t.engine_time += et;
                    t.kubectl_time += kt;
                    t.timed += 1;
                    t.ratios.push(kt.as_secs_f64() / et.as_secs_f64().max(1e-9));
                    let want = String::from_utf8_lossy(&want).into_owned();
                    match native {
                        Engine::Ok(got) if got == want => {
                            t.exact += 1;
                            "exact".to_string()
                        }
                        Engine::Ok(got) => {
                            let same = match (canonical_docs(&got), canonical_docs(&want)) {
                                (Some(a), Some(b)) => a == b,
                                _ => false,
                            };
                            if let Some(o) = &out_dir {
                                let tag = label.trim_start_matches('/').replace('/', "_");
                                std::fs::write(o.join(format!("{tag}.engine.yaml")), &got).unwrap();
                                std::fs::write(o.join(format!("{tag}.kubectl.yaml")), &want)
                                    .unwrap();
                            }
                            if same {
                                t.same_docs += 1;
                                "same-docs".to_string()
                            } else {
                                t.wrong += 1;
                                "WRONG".to_string()
                            }
                        }
                        Engine::Err(KustomizeError::Unsupported { feature, file }) => {
                            *t.refused.entry(feature.clone()).or_default() += 1;
                            format!("refused: unsupported {feature} ({file})")
                        }
                        Engine::Err(e) => {
                            t.errored += 1;
                            format!("ERRORED: {e}")
                        }
                        Engine::Panic(m) => {
                            t.errored += 1;
                            format!("ERRORED: panic {m}")
                        }
                        Engine::Timeout => {
                            t.errored += 1;
                            "ERRORED: engine timed out".to_string()
                        }
                    }
                }
            };
            println!(
                "{label}: {verdict} [engine {:.1} ms, kubectl {:.1} ms]",
                et.as_secs_f64() * 1000.0,
                kt.as_secs_f64() * 1000.0
            );
        }
    }
    let refused: usize = t.refused.values().sum();
    let built = t.exact + t.same_docs + t.wrong + refused + t.errored;
    let pct = |n: usize| 100.0 * n as f64 / built.max(1) as f64;
    println!();
    println!(
        "{built} kustomizations kubectl builds offline ({} more oracle-failed, {} of them built by the engine)",
        t.oracle_failed, t.oracle_failed_engine_built
    );
    println!("  exact      {:5} ({:.1}%)", t.exact, pct(t.exact));
    println!("  same-docs  {:5} ({:.1}%)", t.same_docs, pct(t.same_docs));
    println!("  WRONG      {:5} ({:.1}%)", t.wrong, pct(t.wrong));
    println!("  refused    {:5} ({:.1}%)", refused, pct(refused));
    for (feature, n) in &t.refused {
        println!("    {feature}: {n} ({:.1}%)", pct(*n));
    }
    println!("  errored    {:5} ({:.1}%)", t.errored, pct(t.errored));
    if t.timed > 0 {
        t.ratios.sort_by(|a, b| a.total_cmp(b));
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / t.timed as f64;
        println!(
            "timing over {} builds: engine {:.2} ms/build in process, kubectl {:.1} ms/build; ratio of totals {:.0}x, median per-build ratio {:.0}x",
            t.timed,
            per(t.engine_time),
            per(t.kubectl_time),
            t.kubectl_time.as_secs_f64() / t.engine_time.as_secs_f64().max(1e-9),
            t.ratios[t.ratios.len() / 2]
        );
    }
}
