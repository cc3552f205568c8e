//! The container image's environment, reproduced on the host. No container engine runs here, so
//! the Dockerfile's final stage (ENV, USER, WORKDIR, ENTRYPOINT, CMD) is read and:
//!
//! - held to what the Deployment in `applications/system/capstan` expects (user, args, port,
//!   writable paths on a read-only root filesystem, the image tag = this repository's version);
//! - the real binary is started with exactly that environment: a cleared environment plus the
//!   image's variables, the image's user (when the test runs as root, as CI does), its working
//!   directory and its default arguments. Two things differ, and only these: paths under the
//!   image's WORKDIR are moved into a temporary directory, and the listen port becomes 0 so
//!   parallel tests never collide. `PATH` is the host's (the image's tools are found there).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use capstan_worker::yaml::parse_documents;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What the final stage of a Dockerfile sets for the process it runs.
#[derive(Debug, Default)]
struct Image {
    env: Vec<(String, String)>,
    /// Every `ARG name=default` of the file, whatever its stage.
    args: Vec<(String, String)>,
    user: Option<(u32, u32)>,
    workdir: Option<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    expose: Vec<u16>,
}

impl Image {
    fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the final stage. Only the forms this repository uses are accepted (exec-form
/// ENTRYPOINT/CMD, `KEY=VALUE` ENV without quotes or spaces, numeric `USER uid:gid`): anything else
/// is an error rather than a guess.
fn parse_dockerfile(text: &str) -> Result<Image, String> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut image = Image::default();
    for line in logical {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => {
                // A new stage starts from nothing; ARG defaults are kept from every stage
                // (they are the file's pinned versions).
                let args = std::mem::take(&mut image.args);
                image = Image::default();
                image.args = args;
            }
            "ARG" => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                image.args.push((k.to_string(), v.to_string()));
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("ENV {pair}: only KEY=VALUE is supported"))?;
                    if v.contains(['"', '\'', '$']) {
                        return Err(format!("ENV {k}: quotes and variables are not supported"));
                    }
                    image.env.push((k.to_string(), v.to_string()));
                }
            }
            "USER" => {
                let (u, g) = rest
                    .split_once(':')
                    .ok_or_else(|| format!("USER {rest}: give a numeric uid:gid"))?;
                let parse = |s: &str| {
                    s.parse::<u32>()
                        .map_err(|_| format!("USER {rest}: give a numeric uid:gid"))
                };
                image.user = Some((parse(u)?, parse(g)?));
            }
            "WORKDIR" => image.workdir = Some(rest.to_string()),
            "ENTRYPOINT" | "CMD" => {
                let v: Vec<String> = serde_json::from_str(rest)
                    .map_err(|_| format!("{instruction} {rest}: use the exec (JSON array) form"))?;
                if instruction.eq_ignore_ascii_case("CMD") {
                    image.cmd = v;
                } else {
                    image.entrypoint = v;
                }
            }
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    image.expose.push(
                        p.trim_end_matches("/tcp")
                            .parse()
                            .map_err(|_| format!("EXPOSE {p}"))?,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(image)
}

fn image() -> Image {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    parse_dockerfile(&text).unwrap()
}

fn read_yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    parse_documents(&text, path).unwrap()
}

fn deployment() -> Value {
    read_yaml("applications/system/capstan/deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap()
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn the_image_is_what_the_deployment_expects() {
    let image = image();
    let dep = deployment();
    let pod = &dep["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let version = env!("CARGO_PKG_VERSION");

    // Non-root, and the same uid/gid the pod runs as (the data volume's fsGroup relies on it).
    let (uid, gid) = image.user.expect("the image names its USER");
    assert_ne!(uid, 0, "the image must not run as root");
    assert_eq!(pod["securityContext"]["runAsUser"], uid);
    assert_eq!(pod["securityContext"]["runAsGroup"], gid);

    // The Deployment relies on the image's entrypoint and passes the image's default arguments.
    assert!(
        container.get("command").is_none(),
        "the Deployment must not replace the entrypoint"
    );
    assert_eq!(image.entrypoint, ["/usr/local/bin/capstan"]);
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    assert_eq!(args, image.cmd);

    // The image reference is this repository's version, in the Deployment, the kustomization
    // and the image's own label.
    let image_ref = container["image"].as_str().unwrap();
    assert_eq!(
        image_ref,
        format!("ghcr.io/capstan-gitops/capstan:{version}")
    );
    let kustomization = &read_yaml("applications/system/capstan/kustomization.yaml")[0];
    assert_eq!(kustomization["images"][0]["newTag"], version);
    assert!(
        image
            .args
            .iter()
            .any(|(k, v)| k == "CAPSTAN_VERSION" && v == version),
        "ARG CAPSTAN_VERSION={version} missing: {:?}",
        image.args
    );

    // The listen port is the container's http port, and exposed.
    let listen = image.env("CAPSTAN_LISTEN").unwrap();
    let http = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert_eq!(http["containerPort"], port_of(listen));
    assert!(image.expose.contains(&port_of(listen)));

    // The root filesystem is read-only, so every place the image writes is a mounted volume.
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["readOnly"] != true)
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    let writable = |path: &str| {
        mounts
            .iter()
            .any(|m| path == *m || path.starts_with(&format!("{m}/")))
    };
    for path in [
        image.env("CAPSTAN_DATA_DIR").unwrap(),
        image.env("HOME").unwrap(),
        image.workdir.as_deref().unwrap(),
        "/tmp",
    ] {
        assert!(
            writable(path),
            "{path} is written to but not a writable mount: {mounts:?}"
        );
    }
}

/// One HTTP/1.0 GET; the status code.
fn get(addr: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_binary_serves_with_the_image_environment() {
    let image = image();
    let workdir = image.workdir.clone().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let relocated = scratch.path().join(workdir.trim_start_matches('/'));
    std::fs::create_dir_all(&relocated).unwrap();
    let relocate = |v: &str| -> String {
        match v.strip_prefix(&workdir) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", relocated.display())
            }
            _ => v.to_string(),
        }
    };

    // The binary where the image puts it, under the scratch root: the image's user must be able
    // to run it wherever the checkout lives (a CI clone under /root is closed to other users).
    let entrypoint = scratch
        .path()
        .join(image.entrypoint[0].trim_start_matches('/'));
    std::fs::create_dir_all(entrypoint.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_capstan"), &entrypoint).unwrap();
    let mut cmd = Command::new(&entrypoint);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(&relocated)
        .args(&image.cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &image.env {
        let v = if k == "CAPSTAN_LISTEN" {
            let (host, _) = v.rsplit_once(':').unwrap();
            format!("{host}:0")
        } else {
            relocate(v)
        };
        cmd.env(k, v);
    }
    let (uid, gid) = image.user.unwrap();
    // Running as root (CI does): become the image's user. A directory we just made is owned by
    // our effective uid.
    let as_image_user = std::fs::metadata(scratch.path()).unwrap().uid() == 0;
    if as_image_user {
        // The image's user owns only its data directory, as in the image.
        std::os::unix::fs::chown(scratch.path(), Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(&relocated, Some(uid), Some(gid)).unwrap();
        // std drops root's supplementary groups when it switches uid.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!(
                "capstan exited before listening ({}):\n{err}",
                child.wait().unwrap()
            );
        };
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("capstan listening on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    // The image listens on every interface; reach it over loopback.
    let port = port_of(&addr);
    let local = format!("127.0.0.1:{port}");
    assert_eq!(get(&local, "/healthz"), 200);
    assert_eq!(get(&local, "/readyz"), 200);
    // Not loopback, so the dashboard is closed without a token, as in the cluster.
    assert_eq!(get(&local, "/api/overview"), 401);

    // Everything it wrote is in the data directory, owned by the image's user.
    for name in ["capstan.db", "webhook-secret", "dashboard-token"] {
        let meta = std::fs::metadata(relocated.join(name))
            .unwrap_or_else(|e| panic!("{name} not written to the data directory: {e}"));
        if as_image_user {
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{name}");
        }
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "exit {status}; log:\n{log}");
    // CAPSTAN_LOG_FORMAT=json from the image: every log line is a JSON object.
    let first = log.lines().find(|l| !l.trim().is_empty()).unwrap_or("{}");
    assert!(
        serde_json::from_str::<Value>(first).is_ok_and(|v| v.is_object()),
        "not JSON: {first}"
    );
}

#[test]
fn the_dockerfile_reader_refuses_forms_it_does_not_understand() {
    assert!(parse_dockerfile("FROM x\nUSER capstan\n").is_err());
    assert!(parse_dockerfile("FROM x\nCMD serve\n").is_err());
    assert!(parse_dockerfile("FROM x\nENV A \"b c\"\n").is_err());
    let image = parse_dockerfile(
        "ARG V=1\nFROM a AS build\nENV X=1\nFROM b\nENV A=1 \\\n  B=2\nUSER 5:6\nCMD [\"serve\"]\n",
    )
    .unwrap();
    assert_eq!(
        image.env,
        [("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert_eq!(image.user, Some((5, 6)));
    assert_eq!(image.cmd, ["serve"]);
    assert_eq!(image.args, [("V".to_string(), "1".to_string())]);
}
