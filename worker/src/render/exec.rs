//! Running external renderers (kustomize, kubectl, helm) under limits: a timeout, a cap on output
//! size, a scrubbed environment (no tokens, credentials or kubeconfig reach the tool) and proxy
//! variables pointing at a closed port so that any network attempt fails fast. Remote sources are
//! refused before a tool is ever started; the proxy setting is a second line of defence.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Limits applied to every tool run.
#[derive(Clone, Debug)]
pub struct ExecLimits {
    pub timeout: Duration,
    /// Largest stdout accepted; the tool is killed beyond it.
    pub max_output: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            timeout: Duration::from_secs(60),
            max_output: 64 * 1024 * 1024,
        }
    }
}

/// A tool run that did not produce usable output.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{tool}: could not start: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool}: timed out after {seconds}s")]
    Timeout { tool: String, seconds: u64 },
    #[error("{tool}: output exceeds {limit} bytes")]
    OutputTooLarge { tool: String, limit: usize },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("{tool}: output is not UTF-8")]
    NotUtf8 { tool: String },
}

/// Rewrites scratch-directory paths in a tool's error output as repository paths, so messages
/// name `apps/web/kustomization.yaml`, not a temporary folder.
pub fn relative_to(e: ExecError, scratch_repo: &Path) -> ExecError {
    match e {
        ExecError::Failed {
            tool,
            status,
            stderr,
        } => {
            let prefix = format!("{}/", scratch_repo.display());
            ExecError::Failed {
                tool,
                status,
                stderr: stderr.replace(&prefix, ""),
            }
        }
        other => other,
    }
}

/// Finds `name` on the current `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Variables a tool run may inherit from the service; everything else is dropped.
const KEEP: [&str; 2] = ["PATH", "TZ"];

/// Proxy variables. Render tools get them pointing at a closed port; `git` (which must reach the
/// forge) gets the operator's values.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// Settings `git` needs from the service to reach the forge: proxies and custom trust roots.
const GIT_NETWORK: [&str; 6] = [
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// Replaces `cmd`'s environment with the minimum every child needs: `PATH`, `TZ`, `LANG=C`, and
/// `$HOME` (plus the XDG folders) inside `home`, a scratch directory. The service's own
/// environment holds its tokens, database URL and kubeconfig, so nothing else is inherited.
pub fn minimal_env(cmd: &mut Command, home: &Path) {
    cmd.env_clear();
    for k in KEEP {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("LANG", "C")
        .env("LC_ALL", "C")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"));
}

/// The environment of a `git` run: [`minimal_env`], the operator's proxy and trust-root settings,
/// no system or global config, no prompts. Credentials are added by the caller, on purpose.
pub fn git_env(cmd: &mut Command, home: &Path) {
    minimal_env(cmd, home);
    for k in PROXY_VARS.iter().chain(GIT_NETWORK.iter()) {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false");
}

/// Runs `program args` in `cwd`, returning stdout. `home` becomes `$HOME` and the tool cache dirs.
pub fn run(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    home: &Path,
    limits: &ExecLimits,
) -> Result<String, ExecError> {
    let tool = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    minimal_env(&mut cmd, home);
    let closed = "http://127.0.0.1:9";
    for k in PROXY_VARS {
        cmd.env(k, closed);
    }
    cmd.env("NO_PROXY", "")
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env("KUSTOMIZE_PLUGIN_HOME", home.join("no-plugins"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"));

    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = supervise(&mut cmd, &tool, None, limits)?;
    if !status.success() {
        return Err(ExecError::Failed {
            tool,
            status: status.to_string(),
            // Tool stderr is quoted in reports; scrubbed where it is captured, before anything
            // can copy it further.
            stderr: crate::scrub::scrub_string(String::from_utf8_lossy(&err).trim()),
        });
    }
    String::from_utf8(out).map_err(|_| ExecError::NotUtf8 { tool })
}

/// What a supervised child left: how it ended and its output, both bounded.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The first [`MAX_STDERR`] bytes.
    pub stderr: Vec<u8>,
}

/// Stderr kept from a child: enough for any error message, bounded against a flood.
pub const MAX_STDERR: usize = 64 * 1024;

/// Starts `cmd` in a process group of its own, writes `stdin` to it (else its stdin is empty),
/// and waits for it under `limits`: past the timeout, or past `limits.max_output` bytes of
/// stdout, the whole group is killed. The group is killed after a normal exit too, so nothing
/// the child started outlives it. `tool` names it in errors.
pub fn supervise(
    cmd: &mut Command,
    tool: &str,
    stdin: Option<Vec<u8>>,
    limits: &ExecLimits,
) -> Result<Finished, ExecError> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        tool: tool.to_string(),
        source,
    })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // On its own thread: a child that writes before reading all its input must not block
        // on a full stdout pipe while this side blocks on a full stdin pipe. A child that dies
        // early makes the write fail, which its exit status reports better.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let overflow = Arc::new(AtomicBool::new(false));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let cap = limits.max_output;
    let flag = overflow.clone();
    let out_thread = std::thread::spawn(move || -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(s) = stdout {
            // One byte over the cap is enough to know it was exceeded.
            let _ = s.take(cap as u64 + 1).read_to_end(&mut buf);
        }
        if buf.len() > cap {
            flag.store(true, Ordering::SeqCst);
        }
        buf
    });
    let err_thread = std::thread::spawn(move || -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(s) = stderr {
            let _ = s.take(MAX_STDERR as u64).read_to_end(&mut buf);
        }
        buf
    });

    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                kill_group();
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Spawn {
                    tool: tool.to_string(),
                    source,
                });
            }
        }
        if overflow.load(Ordering::SeqCst) {
            kill_group();
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::OutputTooLarge {
                tool: tool.to_string(),
                limit: cap,
            });
        }
        if started.elapsed() > limits.timeout {
            kill_group();
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Timeout {
                tool: tool.to_string(),
                seconds: limits.timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Leftover processes of the tool would hold its output pipes open.
    kill_group();
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    if stdout.len() > cap {
        return Err(ExecError::OutputTooLarge {
            tool: tool.to_string(),
            limit: cap,
        });
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sh(script: &str, limits: &ExecLimits) -> Result<String, ExecError> {
        let tmp = tempfile::tempdir().unwrap();
        run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            tmp.path(),
            tmp.path(),
            limits,
        )
    }

    #[test]
    fn environment_is_scrubbed() {
        // Only the variables set on purpose reach the tool; tokens, USER, kubeconfig and the
        // like from the caller's environment do not.
        let out = sh("env", &ExecLimits::default()).unwrap();
        let names: Vec<&str> = out.lines().filter_map(|l| l.split('=').next()).collect();
        for n in &names {
            assert!(
                KEEP.contains(n)
                    || ["LANG", "LC_ALL"].contains(n)
                    || n.ends_with("PROXY")
                    || n.ends_with("proxy")
                    || n.starts_with("XDG_")
                    || n.starts_with("HELM_")
                    || n.starts_with("GIT_")
                    || n.starts_with("KUSTOMIZE_")
                    || ["HOME", "KUBECONFIG", "PWD", "SHLVL", "_"].contains(n),
                "unexpected variable {n} in the tool environment"
            );
        }
    }

    #[test]
    fn timeout_and_output_cap_are_enforced() {
        let short = ExecLimits {
            timeout: Duration::from_millis(200),
            max_output: 1024,
        };
        assert!(matches!(
            sh("sleep 5", &short),
            Err(ExecError::Timeout { .. })
        ));
        assert!(matches!(
            sh("yes", &short),
            Err(ExecError::OutputTooLarge { .. })
        ));
        // A background child holding stdout open neither hangs the run nor outlives it.
        let out = sh("sleep 30 & echo done", &short).unwrap();
        assert_eq!(out, "done\n");
        let e = sh("echo bad >&2; exit 3", &short).unwrap_err();
        assert!(e.to_string().contains("bad"), "{e}");
    }
}
