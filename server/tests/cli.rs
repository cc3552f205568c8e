//! The binary's command line: version, configuration errors, and `replay` against a real server.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn capstan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_capstan"));
    c.env_remove("DATABASE_URL")
        .env_remove("CAPSTAN_DATABASE_URL")
        .env_remove("CAPSTAN_CONFIG")
        .env_remove("CAPSTAN_WEBHOOK_SECRET");
    c
}

#[test]
fn version_prints_the_crate_version() {
    let out = capstan().arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("capstan {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_configuration_exits_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (env, args, key) in [
        (("CAPSTAN_WORKERS", "lots"), vec![], "CAPSTAN_WORKERS"),
        (("CAPSTAN_LOG_FORMAT", "xml"), vec![], "CAPSTAN_LOG_FORMAT"),
        (("X", "y"), vec!["--listen", "not-an-address"], "--listen"),
        (("X", "y"), vec!["--role", "boss"], "--role"),
    ] {
        let out = capstan()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(&args)
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{key}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// The layering and redaction are tested in `config.rs`; this is the subcommand's wiring.
#[test]
fn config_prints_the_effective_settings_and_refuses_bad_ones_with_78() {
    let out = capstan()
        .args(["config", "--workers", "3"])
        .env("CAPSTAN_WEBHOOK_SECRET", "hunter2hunter2")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "workers = \"3\"  # --workers (flag)"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let out = capstan()
        .args(["config", "--workers", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--workers (flag)")
    );
}

#[test]
fn replay_signs_with_the_generated_secret_and_dedupes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = capstan()
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CAPSTAN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut printed_secret_help = false;
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        printed_secret_help |= line.contains("webhook-secret");
        if let Some(rest) = line.strip_prefix("capstan listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(
        printed_secret_help,
        "first start explains the generated secret"
    );

    let payload = dir.path().join("pr.json");
    std::fs::write(
        &payload,
        r#"{"action":"opened","pull_request":{"number":1,"head":{"ref":"f","sha":"abcabcabcabcabcabcabcabcabcabcabcabcabca"},"base":{"ref":"main","sha":"defdefdefdefdefdefdefdefdefdefdefdefdefd"}},"repository":{"full_name":"acme/gitops"}}"#,
    )
    .unwrap();
    let replay = |delivery: &str| {
        capstan()
            .args(["replay", "--event", "pull_request", "--delivery", delivery])
            .arg("--url")
            .arg(format!("{url}/webhooks/github"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg(&payload)
            .output()
            .unwrap()
    };
    let first = replay("replay-1");
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("202 "));
    let again = replay("replay-1");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("duplicate"));

    // A replay signed with another secret is refused, and says so.
    let forged = capstan()
        .args(["replay", "--event", "pull_request"])
        .arg("--url")
        .arg(format!("{url}/webhooks/github"))
        .arg(&payload)
        .env("CAPSTAN_WEBHOOK_SECRET", "wrong")
        .output()
        .unwrap();
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stdout).starts_with("401 "));

    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn json_logs_carry_the_delivery_span() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = capstan()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CAPSTAN_WEBHOOK_SECRET", "s3")
        .env("CAPSTAN_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("capstan listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let payload = dir.path().join("ping.json");
    std::fs::write(&payload, r#"{"zen":"Design for failure.","hook_id":9}"#).unwrap();
    let out = capstan()
        .args(["replay", "--event", "ping", "--delivery", "log-check"])
        .arg("--url")
        .arg(format!("{url}/webhooks/github"))
        .arg(&payload)
        .env("CAPSTAN_WEBHOOK_SECRET", "s3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Let the ping job finish before stopping (bounded hang guard, not a timing assertion).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = "capstan_jobs_total{kind=\"ping\",outcome=\"succeeded\"} 1";
    for _ in 0..500 {
        let metrics = rt
            .block_on(async {
                capstan_worker::forge::github::install_crypto_provider();
                reqwest::Client::new()
                    .get(format!("{url}/metrics"))
                    .timeout(std::time::Duration::from_secs(5))
                    .send()
                    .await?
                    .text()
                    .await
            })
            .unwrap();
        if metrics.contains(done) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = server.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stored = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "delivery stored")
        .unwrap_or_else(|| panic!("no JSON 'delivery stored' line in:\n{stderr}"));
    assert_eq!(stored["span"]["name"], "delivery");
    assert_eq!(stored["span"]["delivery_id"], "log-check");
    assert_eq!(stored["span"]["event"], "ping");
    // The delivery span sits inside the HTTP layer's span for the request.
    assert_eq!(stored["spans"][0]["name"], "request", "{stored}");
    assert_eq!(stored["spans"][0]["path"], "/webhooks/github");
    assert_eq!(stored["spans"][0]["method"], "POST");
    let job_line = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "job attempt finished")
        .unwrap_or_else(|| panic!("no job line in:\n{stderr}"));
    assert_eq!(job_line["span"]["name"], "job");
    assert_eq!(job_line["span"]["kind"], "ping");
    assert_eq!(job_line["span"]["delivery_id"], "log-check");
}

#[test]
fn the_jsonnet_evaluator_subcommand_exists_under_the_workers_name_and_is_hidden() {
    let help = capstan().arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("render"), "{help}");
    assert!(!help.contains("jsonnet"), "{help}");

    let mut child = capstan()
        .args([
            capstan_worker::render::jsonnet_proc::SUBCOMMAND,
            "--max-memory-bytes",
            "1073741824",
            "--cpu-secs",
            "5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not a request")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // Refused by the evaluator itself, not by the argument parser.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jsonnet evaluator"), "{err}");
    assert!(out.stdout.is_empty());
}
