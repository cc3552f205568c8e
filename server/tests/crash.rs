//! The real binary under a crash: 200 signed deliveries, SIGKILL mid-way, restart, redeliver what
//! failed (as GitHub's "Redeliver" would). Every delivery must end with exactly one job, run to
//! success exactly once (counted by job id in `job_runs`). Also: SIGTERM exits cleanly.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use capstan_server::signature::sign;
use capstan_worker::queue::{self, JobState, Queue};
use sqlx::Connection as _;

const SECRET: &str = "crash-test-secret";
const DELIVERIES: usize = 200;

struct Server {
    child: Child,
    url: String,
}

fn start(data_dir: &Path, database_url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
        .args(["--job-lease-secs", "1", "--poll-interval-ms", "50"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database-url", database_url])
        .env_remove("DATABASE_URL")
        .env_remove("CAPSTAN_DATABASE_URL")
        .env_remove("CAPSTAN_CONFIG")
        .env("CAPSTAN_WEBHOOK_SECRET", SECRET)
        .env("CAPSTAN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("capstan exited before listening"))
            .unwrap();
        if let Some(rest) = line.strip_prefix("capstan listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

fn body(i: usize) -> Vec<u8> {
    format!(
        r#"{{"zen":"Keep it logically awesome.","hook_id":{i},"hook":{{"type":"App","id":{i}}}}}"#
    )
    .into_bytes()
}

async fn deliver(url: &str, i: usize) -> Option<u16> {
    let body = body(i);
    let sig = sign(SECRET.as_bytes(), &body);
    let id = format!("crash-{i:04}");
    capstan_worker::forge::github::install_crypto_provider();
    reqwest::Client::new()
        .post(format!("{url}/webhooks/github"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", id.as_str())
        .header("X-Hub-Signature-256", sig.as_str())
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn crash_and_recover(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), database_url);
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut child = first.child;

    // Four concurrent senders; the process is killed while requests are in flight.
    let mut outcomes: Vec<Option<u16>> = vec![None; DELIVERIES];
    let mut senders = Vec::new();
    for lane in 0..4 {
        let url = first.url.clone();
        let accepted = accepted.clone();
        senders.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (lane..DELIVERIES).step_by(4) {
                let status = deliver(&url, i).await;
                if status.is_some_and(|s| (200..300).contains(&s)) {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                out.push((i, status));
            }
            out
        }));
    }
    while accepted.load(Ordering::SeqCst) < DELIVERIES / 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for s in senders {
        for (i, status) in s.await.unwrap() {
            outcomes[i] = status;
        }
    }
    let ok_before = outcomes
        .iter()
        .filter(|s| s.is_some_and(|s| s < 300))
        .count();
    assert!(
        (DELIVERIES / 2..DELIVERIES).contains(&ok_before),
        "the kill must land mid-way ({ok_before} accepted)"
    );

    // Restart on the same store and redeliver everything that did not get a 2xx.
    let mut second = start(dir.path(), database_url);
    for (i, status) in outcomes.iter().enumerate() {
        if !status.is_some_and(|s| (200..300).contains(&s)) {
            let s = deliver(&second.url, i).await;
            assert!(
                s.is_some_and(|s| (200..300).contains(&s)),
                "redelivery {i}: {s:?}"
            );
        }
    }
    // A stray redelivery of an early one changes nothing.
    assert_eq!(deliver(&second.url, 0).await, Some(200));

    let q = queue::open(database_url).await.unwrap();
    wait_all_succeeded(q.as_ref()).await;
    for i in 0..DELIVERIES {
        let id = format!("crash-{i:04}");
        let jobs = q.jobs_for_delivery(&id).await.unwrap();
        assert_eq!(jobs.len(), 1, "{id}: {jobs:?}");
        let runs = q.job_runs(jobs[0].id).await.unwrap();
        let succeeded = runs.iter().filter(|r| r.outcome == "succeeded").count();
        assert_eq!(succeeded, 1, "{id}: job {} runs {runs:?}", jobs[0].id);
    }
    let total: i64 = q.depth().await.unwrap().iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, DELIVERIES as i64, "one job per delivery, no extras");

    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

async fn wait_all_succeeded(q: &dyn Queue) {
    // A hang guard, generous enough for a loaded CI machine; not a timing assertion.
    for _ in 0..1200 {
        let depth = q.depth().await.unwrap();
        let done: i64 = depth
            .iter()
            .filter(|(_, s, _)| *s == JobState::Succeeded)
            .map(|(_, _, n)| n)
            .sum();
        if done == DELIVERIES as i64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs did not all finish: {:?}", q.depth().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_delivery_loses_and_doubles_nothing_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    crash_and_recover(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_delivery_loses_and_doubles_nothing_postgres() {
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        println!("skipped: needs DATABASE_URL=postgres://… (CI sets it)");
        return;
    };
    let name = format!("capstan_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let root = admin.rsplit_once('/').map(|(r, _)| r).unwrap();
    crash_and_recover(&format!("{root}/{name}")).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("term.db").display());
    let mut server = start(dir.path(), &url);
    for i in 0..5 {
        assert_eq!(deliver(&server.url, i).await, Some(200));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    // Nothing left half-done: every job either finished or is back in the queue unleased.
    let q = queue::open(&url).await.unwrap();
    for (_, state, _) in q.depth().await.unwrap() {
        assert!(
            matches!(state, JobState::Succeeded | JobState::Queued),
            "{state}"
        );
    }
}
