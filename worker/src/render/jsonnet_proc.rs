//! Jsonnet programs evaluated in a child process of Capstan's own binary (`capstan
//! __jsonnet-eval`, hidden from `--help`). A pull request's program is hostile input: the
//! evaluator has no interruption point and no memory accounting, so in the service's own
//! process a runaway program could only be abandoned on a thread, and `std.repeat` or a deep
//! recursion could exhaust the worker. In a child, the operating system bounds it:
//!
//! - the child lowers its own `RLIMIT_AS` (address space) and `RLIMIT_CPU` (a backstop that
//!   stops it even if the parent is gone) before it reads anything, and disables core dumps;
//! - the parent kills the child's process group at the wall-clock deadline, reads at most the
//!   output bound plus a tag line from stdout and 64 KiB of stderr;
//! - the child's environment is empty (the service holds GitHub keys, database URLs and ArgoCD
//!   tokens in its own), its working folder is `/`, and it reads no repository file: the parent
//!   sends the app's inputs, already confined by [`super::jsonnet::closure`], on stdin (the
//!   child reads only its own `/proc/self/status`, to tell a memory failure from a crash).
//!
//! A child that is killed or hits a bound makes the app "not checked" with the bound's name; a
//! child that crashes otherwise makes it "not checked" with its exit status. Either way the
//! service goes on. There is no in-process fallback: a renderer without the binary's path
//! reports Jsonnet apps as not checked.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::RenderError;
use super::exec::{self, ExecError, ExecLimits, Finished};
use super::jsonnet::{self, Failure, JsonnetLimits};
use super::source::JsonnetOptions;
use crate::limits;
use crate::repo_fs::RepoPath;

/// The hidden subcommand of the `capstan` binary that runs [`child_main`].
pub const SUBCOMMAND: &str = "__jsonnet-eval";

/// What the parent hands the child on stdin.
#[derive(Serialize, Deserialize)]
struct Request {
    entry: String,
    jpath: Vec<String>,
    opts: JsonnetOptions,
    max_stack: usize,
    max_output_bytes: usize,
    /// The app's inputs by repository path, base64.
    files: BTreeMap<String, String>,
}

/// The bounds the child puts on itself, from its command line.
#[derive(Clone, Copy, Debug)]
pub struct ChildBounds {
    pub max_memory_bytes: u64,
    pub cpu_seconds: u64,
}

/// The first line of the child's stdout says what follows.
const OK: &str = "ok";
const ERROR: &str = "error";
const TOO_LARGE: &str = "too-large";
const MEMORY: &str = "memory";
/// Room for the tag line on top of the output bound.
const TAG_ROOM: usize = 64;
/// An evaluation error kept in the report, in bytes: the trace is already cut to a few lines,
/// but a program can put any string in its error.
const MAX_ERROR_BYTES: usize = 8 * 1024;

/// CPU seconds the child may use: the deadline rounded up, plus one so that the parent's kill
/// at the deadline normally comes first.
fn cpu_seconds(deadline: Duration) -> u64 {
    deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0) + 1
}

/// Evaluates `entry` in a child process of `program` (the `capstan` binary) with `files`, the
/// app's inputs, and returns its JSON output.
pub fn evaluate(
    program: &Path,
    files: &BTreeMap<String, Arc<[u8]>>,
    entry: &RepoPath,
    app: &RepoPath,
    opts: &JsonnetOptions,
    limits: &JsonnetLimits,
) -> Result<String, RenderError> {
    let jpath = jsonnet::library_path(app, opts)?
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let request = Request {
        entry: entry.as_str().to_string(),
        jpath,
        opts: opts.clone(),
        max_stack: limits.max_stack,
        max_output_bytes: limits.max_output_bytes,
        files: files
            .iter()
            .map(|(p, bytes)| (p.clone(), b64.encode(bytes)))
            .collect(),
    };
    let unavailable = |reason: String| RenderError::Unavailable {
        backend: "jsonnet".into(),
        reason,
    };
    let body = serde_json::to_vec(&request)
        .map_err(|e| unavailable(format!("encoding the evaluator's input: {e}")))?;
    let mut cmd = Command::new(program);
    cmd.arg(SUBCOMMAND)
        .arg("--max-memory-bytes")
        .arg(limits.max_memory_bytes.to_string())
        .arg("--cpu-secs")
        .arg(cpu_seconds(limits.deadline).to_string())
        .env_clear()
        // One malloc arena: each extra one reserves 64 MiB of address space, which would count
        // against the memory bound without ever holding the program's data.
        .env("MALLOC_ARENA_MAX", "1")
        .current_dir("/");
    let bounds = ExecLimits {
        timeout: limits.deadline,
        max_output: limits.max_output_bytes.saturating_add(TAG_ROOM),
    };
    match exec::supervise(&mut cmd, "jsonnet", Some(body), &bounds) {
        Ok(done) => outcome(done, entry, limits),
        Err(ExecError::Timeout { .. }) => Err(over(
            entry,
            "jsonnet_deadline_secs",
            format!("{}s", limits.deadline.as_secs_f64()),
            "the evaluation was stopped",
        )),
        Err(ExecError::OutputTooLarge { .. }) => Err(over(
            entry,
            "jsonnet_max_output_mb",
            mb(limits.max_output_bytes),
            "the program printed more",
        )),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// `bytes` in the MiB the settings are given in (in bytes when not whole MiB, as in tests).
fn mb(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The report's line for a bound `entry` went past.
fn over(entry: &RepoPath, setting: &str, value: String, what: &str) -> RenderError {
    RenderError::Limit {
        file: entry.to_string(),
        line: limits::not_checked(
            setting,
            value,
            &format!("jsonnet exceeded it evaluating {entry}: {what}"),
        ),
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [... cut]", &text[..end])
}

/// What a finished child means for the app.
fn outcome(
    done: Finished,
    entry: &RepoPath,
    limits: &JsonnetLimits,
) -> Result<String, RenderError> {
    let memory = |what: &str| {
        over(
            entry,
            "jsonnet_max_memory_mb",
            mb(limits.max_memory_bytes),
            what,
        )
    };
    if done.status.success() {
        let text = String::from_utf8(done.stdout).map_err(|_| RenderError::Invalid {
            file: entry.to_string(),
            message: "the Jsonnet output is not UTF-8".into(),
        })?;
        let (tag, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        return match tag {
            OK => Ok(rest.to_string()),
            ERROR => Err(RenderError::Invalid {
                file: entry.to_string(),
                message: truncated(rest, MAX_ERROR_BYTES),
            }),
            TOO_LARGE => Err(over(
                entry,
                "jsonnet_max_output_mb",
                mb(limits.max_output_bytes),
                &format!("the program printed {} bytes", rest.trim()),
            )),
            MEMORY => Err(memory(&truncated(rest, MAX_ERROR_BYTES))),
            _ => Err(RenderError::Unavailable {
                backend: "jsonnet".into(),
                reason: "the evaluator ended without a result".into(),
            }),
        };
    }
    let stderr = String::from_utf8_lossy(&done.stderr);
    if done.status.signal() == Some(Signal::SIGXCPU as i32) {
        return Err(over(
            entry,
            "jsonnet_deadline_secs",
            format!("{}s", limits.deadline.as_secs_f64()),
            "the evaluation used up its CPU time",
        ));
    }
    // The standard library's allocation-failure report (then an abort), or a collection that
    // could not grow: both are the address-space bound refusing memory.
    if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        return Err(memory("the program needed more memory"));
    }
    if stderr.contains("has overflowed its stack") {
        return Err(over(
            entry,
            "jsonnet_max_stack",
            limits.max_stack.to_string(),
            "the evaluator's own stack ran out",
        ));
    }
    Err(RenderError::Unavailable {
        backend: "jsonnet".into(),
        reason: format!(
            "the evaluator ended abnormally ({}): {}",
            done.status,
            truncated(stderr.trim(), 2_000)
        ),
    })
}

/// The child: bounds itself, reads its [`Request`] from stdin, evaluates, prints a tagged
/// result. Exit status 0 whenever it has a result, even a failed evaluation.
pub fn child_main(bounds: ChildBounds) -> ExitCode {
    // Bounds first: the request and the evaluation both live inside them.
    let bounded = setrlimit(
        Resource::RLIMIT_AS,
        bounds.max_memory_bytes,
        bounds.max_memory_bytes,
    )
    .and_then(|()| {
        setrlimit(
            Resource::RLIMIT_CPU,
            bounds.cpu_seconds,
            bounds.cpu_seconds + 1,
        )
    })
    // An aborted evaluation would otherwise dump its whole address space to disk.
    .and_then(|()| setrlimit(Resource::RLIMIT_CORE, 0, 0));
    if let Err(e) = bounded {
        eprintln!("jsonnet evaluator: cannot set its limits: {e}");
        return ExitCode::from(2);
    }
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
        eprintln!("jsonnet evaluator: reading its input: {e}");
        return ExitCode::from(2);
    }
    let request: Request = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jsonnet evaluator: its input is not a request: {e}");
            return ExitCode::from(2);
        }
    };
    drop(raw);
    let (tag, body) = match evaluate_here(request, bounds.max_memory_bytes) {
        Ok(json) => (OK, json),
        Err(Reply::Failed(Failure::Eval(message))) => (ERROR, message),
        Err(Reply::Failed(Failure::TooLarge(size))) => (TOO_LARGE, size.to_string()),
        Err(Reply::Memory(why)) => (MEMORY, why),
        Err(Reply::Bad(why)) => {
            eprintln!("jsonnet evaluator: {why}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(tag.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.write_all(body.as_bytes()))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // The parent stopped reading: it has given up on this evaluation.
        Err(_) => ExitCode::from(2),
    }
}

enum Reply {
    Failed(Failure),
    Memory(String),
    Bad(String),
}

/// Native stack per Jsonnet frame allowed by `max_stack`: the evaluator recurses through a few
/// Rust frames for each.
const STACK_PER_FRAME: usize = 32 * 1024;

fn evaluate_here(request: Request, max_memory: u64) -> Result<String, Reply> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
    for (path, data) in request.files {
        let bytes = b64
            .decode(data)
            .map_err(|e| Reply::Bad(format!("input {path:?} is not base64: {e}")))?;
        files.insert(path, Arc::from(bytes));
    }
    let limits = JsonnetLimits {
        max_stack: request.max_stack,
        max_output_bytes: request.max_output_bytes,
        ..JsonnetLimits::default()
    };
    let stack = request
        .max_stack
        .saturating_mul(STACK_PER_FRAME)
        .max(16 * 1024 * 1024);
    let (entry, jpath, opts) = (request.entry, request.jpath, request.opts);
    let worker = std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(stack)
        .spawn(move || jsonnet::run(files, jpath, &entry, &opts, &limits))
        .map_err(|e| Reply::Memory(format!("starting the evaluation thread: {e}")))?;
    match worker.join() {
        Ok(result) => result.map_err(Reply::Failed),
        Err(_) => match peak_memory() {
            // Parts of the evaluator assert that an allocation succeeded rather than report a
            // failure: a panic after the process came close to its bound is that bound. (An
            // allocation request that fails is at most what is already held when collections
            // double, so the peak is then at least half the bound.)
            Some(peak) if peak >= max_memory / 2 => Err(Reply::Memory(format!(
                "the program needed more memory (peak {} MiB)",
                peak >> 20
            ))),
            // The panic's message is on stderr already; the parent reads it there.
            _ => Err(Reply::Bad("the evaluation panicked".into())),
        },
    }
}

/// This process's largest address space so far (`VmPeak`), in bytes.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    let kb: u64 = line
        .trim_start_matches("VmPeak:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_the_deadline_rounded_up_plus_one() {
        assert_eq!(cpu_seconds(Duration::from_secs(30)), 31);
        assert_eq!(cpu_seconds(Duration::from_millis(1_500)), 3);
        assert_eq!(cpu_seconds(Duration::from_millis(200)), 2);
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let text = "é".repeat(10);
        let cut = truncated(&text, 5);
        assert!(cut.starts_with("éé") && cut.ends_with("[... cut]"), "{cut}");
        assert_eq!(truncated("short", 10), "short");
    }
}
