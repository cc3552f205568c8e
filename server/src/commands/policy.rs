//! `capstan policy test|bench`: run the Rego unit tests of policy folders (like `opa test`), and
//! measure the engine on synthetic apps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use capstan_worker::policy::bench::synthetic_apps;
use capstan_worker::policy::rego::{PolicyFile, RegoPolicies};
use capstan_worker::policy::{PolicyEngine, PolicySources};

/// Work with Rego policies.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Run every `test_*` rule in the given folders (default: policies); exit 1 on a failure.
    Test {
        /// Folders (or `.rego` files) whose `test_*` rules run.
        #[arg(default_value = "policies")]
        paths: Vec<PathBuf>,
        /// Rego packages whose rules count (for the load check).
        #[arg(long, default_value = "main")]
        package: Vec<String>,
    },
    /// Time the full engine (shipped bundle, every layer) on synthetic objects.
    Bench {
        /// Synthetic Kubernetes objects to judge per run, spread over the apps.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Apps the objects are split into (per-app rules run once per app).
        #[arg(long, default_value_t = 10)]
        apps: usize,
        /// Timed runs; the median, minimum and maximum are printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Cmd::Test { paths, package } => test(&paths, &package),
        Cmd::Bench {
            objects,
            apps,
            runs,
        } => bench(objects, apps, runs).map(|_| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("capstan policy: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PolicyFile>) -> anyhow::Result<()> {
    if dir.is_file() {
        out.push(PolicyFile {
            path: dir.display().to_string(),
            text: std::fs::read_to_string(dir).with_context(|| dir.display().to_string())?,
        });
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() || p.extension().is_some_and(|e| e == "rego") {
            collect(&p, out)?;
        }
    }
    Ok(())
}

fn test(paths: &[PathBuf], packages: &[String]) -> anyhow::Result<bool> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    let mut policies = RegoPolicies::load(&files, packages, true)?;
    let results = policies.run_tests();
    let mut failed = 0;
    for t in &results {
        if t.passed {
            println!("PASS {}", t.name);
        } else {
            failed += 1;
            match &t.error {
                Some(e) => println!("FAIL {}: {e}", t.name),
                None => println!("FAIL {}", t.name),
            }
        }
    }
    println!(
        "{} files, {} tests: {} passed, {failed} failed",
        files.len(),
        results.len(),
        results.len() - failed
    );
    Ok(failed == 0 && !results.is_empty())
}

fn bench(objects: usize, apps: usize, runs: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    let engine = PolicyEngine::new(&PolicySources::default())?;
    let load = t.elapsed();
    let input = synthetic_apps(objects, apps);
    let n: usize = input.iter().map(|a| a.objects.len()).sum();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let report = engine.check(&input)?;
        times.push(t.elapsed());
        last = Some(report);
    }
    times.sort();
    let median = times[times.len() / 2];
    let report = last.context("no run")?;
    println!(
        "engine load: {:.1} ms ({} Rego files, shipped bundle, {})",
        load.as_secs_f64() * 1e3,
        engine.rego_file_count(),
        if engine.rego_uses_vm() {
            "regorus VM"
        } else {
            "regorus interpreter"
        }
    );
    println!(
        "{n} objects in {} apps, {} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms, {:.0} objects/s",
        input.len(),
        times.len(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        n as f64 / median.as_secs_f64()
    );
    println!(
        "findings per run: {} deny, {} warn",
        report.deny_count(),
        report.warn_count()
    );
    // The same run without the Rego layer, to show where the time goes.
    let builtin_only = PolicyEngine::new(&PolicySources {
        settings: capstan_worker::settings::RepoSettings::parse("policy: {shipped: false}")?.policy,
        files: Vec::new(),
    })?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        builtin_only.check(&input)?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "built-in layers only (schema, apiVersions, cross-app, tracing, exceptions): median {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1e3
    );
    Ok(())
}
