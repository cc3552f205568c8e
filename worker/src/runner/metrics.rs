//! Process metrics in Prometheus text format, kept without a metrics dependency: a few counters
//! and one histogram behind a mutex, rendered on scrape. Label values come from bounded sets
//! (event names after signature verification, job kinds, outcomes) and are escaped anyway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::queue::JobState;

/// Upper bounds (seconds) of the job duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (bound, n) in DURATION_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if secs <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Default)]
struct Inner {
    deliveries: BTreeMap<(String, String), u64>,
    jobs: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    lease_expiries: BTreeMap<String, u64>,
}

/// Shared by the intake (deliveries) and the runner (jobs).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means a panic elsewhere mid-update; counters stay usable.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// One webhook request, by event (or `-` before the signature is verified) and outcome.
    pub fn delivery(&self, event: &str, outcome: &str) {
        self.with(|m| {
            *m.deliveries
                .entry((event.to_string(), outcome.to_string()))
                .or_default() += 1
        });
    }

    /// One finished attempt.
    pub fn job_finished(&self, kind: &str, outcome: &str, secs: f64) {
        self.with(|m| {
            *m.jobs
                .entry((kind.to_string(), outcome.to_string()))
                .or_default() += 1;
            m.durations
                .entry(kind.to_string())
                .or_default()
                .observe(secs);
        });
    }

    /// A job re-claimed because its previous lease expired.
    pub fn lease_expired(&self, kind: &str) {
        self.with(|m| *m.lease_expiries.entry(kind.to_string()).or_default() += 1);
    }

    /// Counter value, for tests and the dashboard.
    pub fn deliveries(&self, event: &str, outcome: &str) -> u64 {
        self.with(|m| {
            m.deliveries
                .get(&(event.to_string(), outcome.to_string()))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Render everything; `depth` is the current (kind, state, count) table from the queue.
    pub fn render(&self, depth: Option<&[(String, JobState, i64)]>) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP capstan_webhook_deliveries_total Webhook requests by event and outcome.\n");
            out.push_str("# TYPE capstan_webhook_deliveries_total counter\n");
            for ((event, outcome), n) in &m.deliveries {
                let _ = writeln!(
                    out,
                    "capstan_webhook_deliveries_total{{event=\"{}\",outcome=\"{}\"}} {n}",
                    escape(event),
                    escape(outcome)
                );
            }
            out.push_str("# HELP capstan_jobs_total Finished job attempts by kind and outcome.\n");
            out.push_str("# TYPE capstan_jobs_total counter\n");
            for ((kind, outcome), n) in &m.jobs {
                let _ = writeln!(
                    out,
                    "capstan_jobs_total{{kind=\"{}\",outcome=\"{}\"}} {n}",
                    escape(kind),
                    escape(outcome)
                );
            }
            out.push_str("# HELP capstan_job_duration_seconds Duration of job attempts.\n");
            out.push_str("# TYPE capstan_job_duration_seconds histogram\n");
            for (kind, h) in &m.durations {
                let kind = escape(kind);
                for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets.iter()) {
                    let _ = writeln!(
                        out,
                        "capstan_job_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "capstan_job_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "capstan_job_duration_seconds_sum{{kind=\"{kind}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "capstan_job_duration_seconds_count{{kind=\"{kind}\"}} {}",
                    h.count
                );
            }
            out.push_str("# HELP capstan_job_lease_expiries_total Jobs re-claimed after their lease expired.\n");
            out.push_str("# TYPE capstan_job_lease_expiries_total counter\n");
            for (kind, n) in &m.lease_expiries {
                let _ = writeln!(
                    out,
                    "capstan_job_lease_expiries_total{{kind=\"{}\"}} {n}",
                    escape(kind)
                );
            }
        });
        // Render verification counts live with the renderer, which any job may own.
        out.push_str(&crate::render::verify::metrics_text());
        if let Some(depth) = depth {
            out.push_str("# HELP capstan_queue_jobs Jobs in the queue by kind and state.\n");
            out.push_str("# TYPE capstan_queue_jobs gauge\n");
            for (kind, state, n) in depth {
                let _ = writeln!(
                    out,
                    "capstan_queue_jobs{{kind=\"{}\",state=\"{state}\"}} {n}",
                    escape(kind)
                );
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_depth() {
        let m = Metrics::new();
        m.delivery("pull_request", "accepted");
        m.delivery("pull_request", "accepted");
        m.delivery("-", "unauthorized");
        m.job_finished("ping", "succeeded", 0.02);
        m.lease_expired("pr_check");
        let text = m.render(Some(&[("pr_check".into(), JobState::Queued, 3)]));
        assert!(text.contains(
            "capstan_webhook_deliveries_total{event=\"pull_request\",outcome=\"accepted\"} 2"
        ));
        assert!(text.contains("capstan_jobs_total{kind=\"ping\",outcome=\"succeeded\"} 1"));
        assert!(text.contains("capstan_job_duration_seconds_bucket{kind=\"ping\",le=\"0.01\"} 0"));
        assert!(text.contains("capstan_job_duration_seconds_bucket{kind=\"ping\",le=\"0.025\"} 1"));
        assert!(text.contains("capstan_job_lease_expiries_total{kind=\"pr_check\"} 1"));
        assert!(text.contains("capstan_queue_jobs{kind=\"pr_check\",state=\"queued\"} 3"));
        assert_eq!(m.deliveries("-", "unauthorized"), 1);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
