//! Jsonnet directory apps: evaluated as ArgoCD evaluates them (ext vars and TLAs as strings or
//! code, `libs` relative to the repository root, `*.libsonnet` only imported), imports kept inside
//! the repository, evaluation bounded in a child process of the `capstan` binary. Every expected
//! value below is worked out by hand from the Jsonnet language reference, not taken from an
//! implementation.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::jsonnet::JsonnetLimits;
use capstan_worker::render::{
    DirectoryOptions, JsonnetOptions, JsonnetVar, RenderConfig, RenderError, RenderSource,
    Renderer, SourceKind,
};
use capstan_worker::repo_fs::{DirFs, MemFs, RepoFs, RepoPath};
use serde_json::{Value, json};

fn var(name: &str, value: &str, code: bool) -> JsonnetVar {
    JsonnetVar {
        name: name.into(),
        value: value.into(),
        code,
    }
}

fn source(path: &str, jsonnet: JsonnetOptions) -> RenderSource {
    RenderSource {
        path: RepoPath::new(path).unwrap(),
        kind: SourceKind::Directory(DirectoryOptions {
            jsonnet,
            ..Default::default()
        }),
        namespace: None,
        release_name: "j".into(),
    }
}

/// The `capstan` binary, whose hidden subcommand evaluates Jsonnet. It belongs to the server
/// crate (which depends on this one), so it is built here when the test runner did not.
fn capstan() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("capstan");
    if !bin.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "capstan-server", "--bin", "capstan"])
            .current_dir(root)
            .status()
            .unwrap();
        assert!(status.success(), "building the capstan binary failed");
    }
    bin
}

/// A renderer configuration that evaluates Jsonnet as the service does, with `limits`.
fn isolated(limits: JsonnetLimits) -> RenderConfig {
    RenderConfig {
        jsonnet: limits,
        jsonnet_evaluator: Some(capstan()),
        ..RenderConfig::default()
    }
}

fn render(fs: &dyn RepoFs, src: &RenderSource) -> Result<Vec<Value>, RenderError> {
    render_with(isolated(JsonnetLimits::default()), fs, src)
}

fn render_with(
    config: RenderConfig,
    fs: &dyn RepoFs,
    src: &RenderSource,
) -> Result<Vec<Value>, RenderError> {
    let r = Renderer::new(config);
    Ok(r.render(fs, src)?
        .objects
        .into_iter()
        .map(|o| o.value)
        .collect())
}

fn app_fs() -> MemFs {
    MemFs::new()
        .with(
            "apps/j/main.jsonnet",
            "local lib = import 'naming.libsonnet';\n\
             local helpers = import 'helpers/greet.libsonnet';\n\
             function(replicas, suffix) [\n\
               {\n\
                 apiVersion: 'v1',\n\
                 kind: 'ConfigMap',\n\
                 metadata: { name: lib.name(std.extVar('app')) + suffix },\n\
                 data: {\n\
                   env: std.extVar('env'),\n\
                   replicas: std.toString(replicas * 2),\n\
                   joined: std.join('-', ['a', 'b', 'c']),\n\
                   upper: std.asciiUpper('x'),\n\
                   greeting: helpers.greet,\n\
                   note: importstr 'files/note.txt',\n\
                   len: std.toString(std.length(std.range(1, 10))),\n\
                 },\n\
               },\n\
               null,\n\
             ]\n",
        )
        .with(
            "apps/j/helpers/greet.libsonnet",
            "{ greet: 'hello ' + (import 'inner.libsonnet').who }\n",
        )
        .with("apps/j/helpers/inner.libsonnet", "{ who: 'world' }\n")
        .with("apps/j/files/note.txt", "note\n")
        // Never evaluated: ArgoCD evaluates `*.jsonnet` only, and nothing imports it.
        .with("apps/j/unused.libsonnet", "error 'evaluated a library'\n")
        .with("vendor/naming.libsonnet", "{ name(n):: 'cm-' + n }\n")
        .with("vendor/other.libsonnet", "{}\n")
}

fn app_options() -> JsonnetOptions {
    JsonnetOptions {
        ext_vars: vec![var("app", "web", false), var("env", "'pro' + 'd'", true)],
        tlas: vec![var("replicas", "1 + 2", true), var("suffix", "-x", false)],
        libs: vec!["vendor".into()],
    }
}

#[test]
fn ext_vars_tlas_libs_imports_and_std_give_the_values_the_language_defines() {
    let fs = app_fs();
    let objects = render(&fs, &source("apps/j", app_options())).unwrap();
    assert_eq!(
        objects,
        vec![json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm-web-x"},
            "data": {
                "env": "prod",
                "replicas": "6",
                "joined": "a-b-c",
                "upper": "X",
                "greeting": "hello world",
                "note": "note\n",
                "len": "10",
            },
        })]
    );
}

#[test]
fn inputs_are_the_programs_and_what_they_import_not_unused_libraries() {
    let fs = app_fs();
    let r = Renderer::new(RenderConfig::default());
    let inputs: BTreeSet<String> = r
        .inputs(&fs, &source("apps/j", app_options()))
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let want: BTreeSet<String> = [
        "apps/j/main.jsonnet",
        "apps/j/helpers/greet.libsonnet",
        "apps/j/helpers/inner.libsonnet",
        "apps/j/files/note.txt",
        "vendor/naming.libsonnet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(inputs, want);
}

/// The `data` of the one object `a/main.jsonnet` renders with these `libs`.
fn data_with_libs(fs: &MemFs, libs: &[&str]) -> Value {
    let opts = JsonnetOptions {
        libs: libs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    render(fs, &source("a", opts)).unwrap()[0]["data"].clone()
}

#[test]
fn the_own_folder_wins_then_the_last_library_then_the_app_folder() {
    let fs = MemFs::new()
        .with(
            "a/main.jsonnet",
            "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' },\n\
               data: { own: (import 'sub/own.libsonnet'), lib: (import 'pick.libsonnet') } }\n",
        )
        .with("a/sub/own.libsonnet", "(import 'pick.libsonnet')\n")
        .with("a/sub/pick.libsonnet", "'sub'\n")
        .with("a/pick.libsonnet", "'app'\n")
        .with("l1/pick.libsonnet", "'l1'\n")
        .with("l2/pick.libsonnet", "'l2'\n");
    let data = |libs: &[&str]| data_with_libs(&fs, libs);
    // `pick` from main.jsonnet: its own folder `a` first.
    assert_eq!(data(&["l1", "l2"]), json!({"own": "sub", "lib": "app"}));
    // Without a copy next to the importer, the library path is searched last entry first.
    let fs2 = MemFs::new()
        .with(
            "a/main.jsonnet",
            "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { lib: (import 'pick.libsonnet') } }\n",
        )
        .with("l1/pick.libsonnet", "'l1'\n")
        .with("l2/pick.libsonnet", "'l2'\n");
    let lib = |libs: &[&str]| data_with_libs(&fs2, libs)["lib"].clone();
    assert_eq!(lib(&["l1", "l2"]), json!("l2"));
    assert_eq!(lib(&["l2", "l1"]), json!("l1"));
}

fn refusal(fs: &dyn RepoFs) -> String {
    let err = render(fs, &source("app", JsonnetOptions::default())).unwrap_err();
    assert!(
        matches!(err, RenderError::Input { .. }),
        "a refusal, not an evaluation error: {err}"
    );
    err.to_string()
}

#[test]
fn imports_leaving_the_repository_are_refused_loudly() {
    for program in [
        "import '/etc/passwd'",
        "importstr '/etc/passwd'",
        "importstr '../../../../etc/passwd'",
        "{ a: importbin '../../x' }",
    ] {
        let fs = MemFs::new().with("app/main.jsonnet", program);
        let err = refusal(&fs);
        assert!(err.contains("escapes the repository"), "{program}: {err}");
        assert!(err.contains("app/main.jsonnet"), "{program}: {err}");
    }
    // A library path outside the repository.
    let fs = MemFs::new().with("app/main.jsonnet", "{}");
    let opts = JsonnetOptions {
        libs: vec!["../..".into()],
        ..Default::default()
    };
    let err = render(&fs, &source("app", opts)).unwrap_err().to_string();
    assert!(err.contains("escapes the repository"), "{err}");
}

#[test]
fn a_symlink_out_of_the_repository_is_refused_in_a_commit_and_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let program: &[u8] = b"{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { p: importstr 'leak.txt' } }\n";
    let repo_dir = tmp.path().join("repo");
    let c = RepoBuilder::init(&repo_dir)
        .unwrap()
        .commit(
            "evil",
            &[
                Change::Write("app/main.jsonnet", program),
                Change::Symlink("app/leak.txt", "/etc/passwd"),
            ],
        )
        .unwrap();
    let fs = GitRepo::open(&repo_dir).unwrap().tree_fs(c).unwrap();
    let err = refusal(&fs);
    assert!(err.contains("symlink leaves the repository"), "{err}");
    assert!(!err.contains("root:x:0"), "{err}");

    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    std::fs::write(wd.join("app/main.jsonnet"), program).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", wd.join("app/leak.txt")).unwrap();
    let err = refusal(&DirFs::new(&wd).unwrap());
    assert!(err.contains("symlink leaves the repository"), "{err}");
    assert!(!err.contains("root:x:0"), "{err}");
}

#[test]
fn errors_name_the_file_and_line() {
    let fs = MemFs::new()
        .with(
            "e/main.jsonnet",
            "local x = import 'lib.libsonnet';\n{\n  a: x.f(1),\n}\n",
        )
        .with(
            "e/lib.libsonnet",
            "{\n  f(n)::\n    error 'boom ' + n,\n}\n",
        );
    let err = render(&fs, &source("e", JsonnetOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("boom 1"), "{err}");
    assert!(err.contains("e/lib.libsonnet:3"), "{err}");
    assert!(err.contains("e/main.jsonnet"), "{err}");

    // An undefined external variable is an error, not an empty value.
    let fs = MemFs::new().with("e/main.jsonnet", "std.extVar('missing')\n");
    let err = render(&fs, &source("e", JsonnetOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn output_shapes_are_read_as_argocd_reads_them() {
    let cm =
        |n: &str| format!("{{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: '{n}' }} }}");
    let names = |program: String| {
        let fs = MemFs::new().with("o/main.jsonnet", program);
        render(&fs, &source("o", JsonnetOptions::default())).map(|objs| {
            objs.iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(names(cm("one")).unwrap(), vec!["one"]);
    assert_eq!(
        names(format!("[{}, null, {}]", cm("a"), cm("b"))).unwrap(),
        vec!["a", "b"]
    );
    // A list object stands for its items, whatever its kind.
    assert_eq!(
        names(format!(
            "{{ apiVersion: 'v1', kind: 'ConfigMapList', items: [{}, {}] }}",
            cm("i1"),
            cm("i2")
        ))
        .unwrap(),
        vec!["i1", "i2"]
    );
    assert_eq!(names("null".into()).unwrap(), Vec::<String>::new());
    for bad in [
        format!("[[{}]]", cm("nested")),
        "{ deployment: { kind: 'X' } }".to_string(),
        "'text'".to_string(),
    ] {
        assert!(names(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn hostile_programs_hit_the_limits_and_the_app_is_not_checked() {
    let limits = JsonnetLimits {
        max_stack: 200,
        deadline: Duration::from_secs(2),
        max_output_bytes: 1_000,
        max_files: 3,
        ..JsonnetLimits::default()
    };
    let run = |program: &str, extra: &[(&str, &str)]| {
        let mut fs = MemFs::new().with("h/main.jsonnet", program);
        for (p, c) in extra {
            fs = fs.with(p, c);
        }
        render_with(
            isolated(limits),
            &fs,
            &source("h", JsonnetOptions::default()),
        )
        .unwrap_err()
    };
    let deep = run("local f(n) = 1 + f(n + 1); f(0)", &[]);
    // Too deep is the program's error (go-jsonnet's "max stack frames exceeded"), and the
    // trace in the message stays short.
    assert!(!deep.is_not_checked(), "{deep}");
    assert!(deep.to_string().contains("stack overflow"), "{deep}");
    assert!(deep.to_string().lines().count() <= 25, "{deep}");

    // 2^30 calls, never deeper than 30: only the deadline stops it.
    let slow = run(
        "local f(n) = if n == 0 then 0 else f(n - 1) + f(n - 1); f(30)",
        &[],
    );
    assert!(slow.is_not_checked(), "{slow}");
    assert!(slow.to_string().contains("jsonnet_deadline_secs"), "{slow}");

    let big = run(
        "{ kind: 'ConfigMap', data: { x: std.repeat('x', 5000) } }",
        &[],
    );
    assert!(big.is_not_checked(), "{big}");
    assert!(big.to_string().contains("jsonnet_max_output_mb"), "{big}");

    let many = run(
        "(import 'a.libsonnet') + (import 'b.libsonnet') + (import 'c.libsonnet')",
        &[
            ("h/a.libsonnet", "1"),
            ("h/b.libsonnet", "1"),
            ("h/c.libsonnet", "1"),
        ],
    );
    assert!(many.is_not_checked(), "{many}");
    assert!(many.to_string().contains("jsonnet_max_files"), "{many}");
}

/// Live evaluator processes started by process `parent`: (pid, environment).
fn evaluator_children(parent: u32) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so read after its last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let evaluator = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == b"__jsonnet-eval");
        if ppid == Some(parent) && evaluator {
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let vars = environ
                .split(|b| *b == 0)
                .filter(|v| !v.is_empty())
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            out.push((pid, vars));
        }
    }
    out
}

/// 2^60 calls, never deeper than 60: nothing but the deadline ends it.
const ENDLESS: &str =
    "local f(n) = if n == 0 then 0 else f(n - 1) + f(n - 1); { kind: 'X', n: f(60) }\n";

/// The first evaluator `parent` starts, watched for until `done`.
fn first_evaluator(parent: u32, done: &AtomicBool) -> Option<(u32, Vec<String>)> {
    while !done.load(Ordering::SeqCst) {
        if let Some(child) = evaluator_children(parent).into_iter().next() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Variables an evaluator was started with beyond the one it is given on purpose.
fn inherited(environ: &[String]) -> Vec<&String> {
    environ
        .iter()
        .filter(|v| !v.starts_with("MALLOC_ARENA_MAX="))
        .collect()
}

#[test]
fn an_endless_program_is_killed_at_the_deadline_and_its_process_is_gone() {
    let fs = MemFs::new().with("l/main.jsonnet", ENDLESS);
    let limits = JsonnetLimits {
        deadline: Duration::from_secs(3),
        ..JsonnetLimits::default()
    };
    let done = AtomicBool::new(false);
    let (err, seen) = std::thread::scope(|s| {
        let watcher = s.spawn(|| first_evaluator(std::process::id(), &done));
        let err = render_with(
            isolated(limits),
            &fs,
            &source("l", JsonnetOptions::default()),
        )
        .unwrap_err();
        done.store(true, Ordering::SeqCst);
        (err, watcher.join().unwrap())
    });
    assert!(err.is_not_checked(), "{err}");
    assert!(err.to_string().contains("jsonnet_deadline_secs"), "{err}");
    let (pid, environ) = seen.expect("the program ran in a child process");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "evaluator process {pid} outlived its deadline"
    );
    // This process has an environment (PATH, HOME, the test runner's variables); the child
    // inherits none of it.
    assert!(std::env::vars_os().count() > 0);
    assert!(inherited(&environ).is_empty(), "{environ:?}");
}

#[test]
fn the_cli_evaluates_without_the_callers_secrets_and_the_evaluator_dies_at_its_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let c = b
        .commit(
            "endless",
            &[Change::Write("l/main.jsonnet", ENDLESS.as_bytes())],
        )
        .unwrap();
    b.set_ref("refs/heads/main", c).unwrap();
    // What the service holds in its environment: GitHub credentials, the database URL, the
    // webhook secret. The deadline comes from the service's own setting.
    let canaries = [
        ("CAPSTAN_GITHUB_TOKEN", "ghp_canaryTOKEN0123456789"),
        ("DATABASE_URL", "postgres://capstan:canaryPW@db/capstan"),
        ("CAPSTAN_WEBHOOK_SECRET", "canary-webhook-secret"),
    ];
    let mut cmd = std::process::Command::new(capstan());
    cmd.args(["render", "l", "--ref", "main", "--repo"])
        .arg(&dir)
        .env("CAPSTAN_JSONNET_DEADLINE_SECS", "3")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in canaries {
        cmd.env(k, v);
    }
    let cli = cmd.spawn().unwrap();
    let done = AtomicBool::new(false);
    let done = &done;
    let (out, seen) = std::thread::scope(|s| {
        let cli_pid = cli.id();
        let watcher = s.spawn(move || first_evaluator(cli_pid, done));
        let out = cli.wait_with_output().unwrap();
        done.store(true, Ordering::SeqCst);
        (out, watcher.join().unwrap())
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("jsonnet_deadline_secs (3s)"), "{stderr}");
    let (pid, environ) = seen.expect("the CLI evaluated the program in a child process");
    for (name, value) in canaries {
        assert!(
            !environ
                .iter()
                .any(|v| v.contains(name) || v.contains(value)),
            "{name} reached the evaluator: {environ:?}"
        );
    }
    assert!(inherited(&environ).is_empty(), "{environ:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "evaluator process {pid} outlived the CLI"
    );
}

#[test]
fn a_program_allocating_without_bound_is_not_checked_for_memory_and_rendering_goes_on() {
    // Each element is a fresh megabyte and `join` keeps them all: without a bound this takes
    // 100 GB.
    let hog = "local mb = std.repeat('x', 1024 * 1024);\n\
               { kind: 'ConfigMap', data: { n: std.length(std.join('', std.makeArray(100000, function(i) mb + i))) } }\n";
    let limits = JsonnetLimits {
        max_memory_bytes: 512 * 1024 * 1024,
        // Far more than the allocation needs: the memory bound stops it, not the clock.
        deadline: Duration::from_secs(120),
        ..JsonnetLimits::default()
    };
    let r = Renderer::new(isolated(limits));
    let fs = MemFs::new().with("m/main.jsonnet", hog).with(
        "ok/main.jsonnet",
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok' } }",
    );
    let err = r
        .render(&fs, &source("m", JsonnetOptions::default()))
        .unwrap_err();
    assert!(err.is_not_checked(), "{err}");
    assert!(err.to_string().contains("jsonnet_max_memory_mb"), "{err}");
    assert!(evaluator_children(std::process::id()).is_empty());
    // The same renderer, in the same process, goes on with the next app.
    let ok = r
        .render(&fs, &source("ok", JsonnetOptions::default()))
        .unwrap();
    assert_eq!(ok.objects.len(), 1);
}

#[test]
fn without_the_evaluator_a_jsonnet_app_is_not_checked_never_evaluated_here() {
    let fs = MemFs::new().with("n/main.jsonnet", "{ kind: 'ConfigMap' }");
    let err = render_with(
        RenderConfig::default(),
        &fs,
        &source("n", JsonnetOptions::default()),
    )
    .unwrap_err();
    assert!(err.is_not_checked(), "{err}");
    assert!(err.to_string().contains("jsonnet"), "{err}");
}
