//! Process metrics for `/metrics`, kept with `prometheus-client` and rendered in Prometheus
//! text format (0.0.4) on scrape. Label values come from bounded sets (event names after
//! signature verification, job kinds, outcomes); the encoder escapes them anyway.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::queue::JobState;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the job duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    event: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Shared by the intake (deliveries) and the runner (jobs).
pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    durations: Family<KindLabel, Histogram>,
    lease_expiries: Family<KindLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let durations = Family::<KindLabel, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let lease_expiries = Family::<KindLabel, Counter>::default();
        let mut registry = Registry::default();
        // Counters get their `_total` suffix from the registry.
        registry.register(
            "capstan_webhook_deliveries",
            "Webhook requests by event and outcome",
            deliveries.clone(),
        );
        registry.register(
            "capstan_jobs",
            "Finished job attempts by kind and outcome",
            jobs.clone(),
        );
        registry.register(
            "capstan_job_duration_seconds",
            "Duration of job attempts",
            durations.clone(),
        );
        registry.register(
            "capstan_job_lease_expiries",
            "Jobs re-claimed after their lease expired",
            lease_expiries.clone(),
        );
        Metrics {
            registry,
            deliveries,
            jobs,
            durations,
            lease_expiries,
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One webhook request, by event (or `-` before the signature is verified) and outcome.
    pub fn delivery(&self, event: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                event: event.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// One finished attempt.
    pub fn job_finished(&self, kind: &str, outcome: &str, secs: f64) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.durations
            .get_or_create(&KindLabel { kind: kind.into() })
            .observe(secs);
    }

    /// A job re-claimed because its previous lease expired.
    pub fn lease_expired(&self, kind: &str) {
        self.lease_expiries
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counter value, for tests and the dashboard.
    pub fn deliveries(&self, event: &str, outcome: &str) -> u64 {
        self.deliveries
            .get(&DeliveryLabels {
                event: event.into(),
                outcome: outcome.into(),
            })
            .map_or(0, |c| c.get())
    }

    /// Render everything; `depth` is the current (kind, state, count) table from the queue.
    pub fn render(&self, depth: Option<&[(String, JobState, i64)]>) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        // Render verification counts live with the renderer, which any job may own.
        out.push_str(&crate::render::verify::metrics_text());
        if let Some(depth) = depth {
            // A registry per scrape: the gauge is a snapshot of the queue, not process state,
            // so kinds and states that emptied disappear and concurrent scrapes do not mix.
            let queue = Family::<DepthLabels, Gauge>::default();
            for (kind, state, n) in depth {
                queue
                    .get_or_create(&DepthLabels {
                        kind: kind.clone(),
                        state: state.to_string(),
                    })
                    .set(*n);
            }
            let mut scrape = Registry::default();
            scrape.register(
                "capstan_queue_jobs",
                "Jobs in the queue by kind and state",
                queue,
            );
            let _ = prometheus_text::encode(&mut out, &scrape);
        }
        out
    }
}

/// `capstan_render_verifications_total` from the renderer's counts, in the same format.
pub fn verifications_text(counts: &[(&str, u64)]) -> String {
    let family = Family::<OutcomeLabel, Counter>::default();
    for (outcome, n) in counts {
        family
            .get_or_create(&OutcomeLabel {
                outcome: (*outcome).into(),
            })
            .inc_by(*n);
    }
    let mut registry = Registry::default();
    registry.register(
        "capstan_render_verifications",
        "Native renders checked against the kustomize binary, by outcome (over_budget: sampled, left out by render.verifyBudget)",
        family,
    );
    let mut out = String::new();
    let _ = prometheus_text::encode(&mut out, &registry);
    out
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
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.delivery("a\"b\\c\nd", "x");
        let text = m.render(None);
        assert!(
            text.contains(r#"capstan_webhook_deliveries_total{event="a\"b\\c\nd",outcome="x"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn queue_depth_is_a_snapshot_per_scrape() {
        let m = Metrics::new();
        let first = m.render(Some(&[("pr_check".into(), JobState::Queued, 3)]));
        assert!(first.contains("# TYPE capstan_queue_jobs gauge"));
        let second = m.render(Some(&[]));
        assert!(!second.contains("capstan_queue_jobs{"), "{second}");
    }
}
