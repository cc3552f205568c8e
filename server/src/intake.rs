//! `POST /webhooks/github` (and `/webhooks/gitea` for `--forge gitea`): the order of checks is
//! the contract. Size and signature come first, so an unsigned request costs no JSON parsing and
//! no database write; then the headers, the payload, the allowlist; then the delivery with its
//! jobs is committed, in one transaction with the deliveries that arrived at the same time (group
//! commit), before the answer. Only the signature, the header names and the payload dialect
//! differ by forge ([`Source`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use capstan_worker::failpoint;
use capstan_worker::forge::ForgeKind;
use capstan_worker::jobs::{self, Decision};
use capstan_worker::queue::{DeliveryOutcome, NewDelivery, RecordOutcome};
use http_body_util::{BodyExt, LengthLimitError};
use serde_json::json;
use tracing::{Instrument, field, info, info_span, warn};

use crate::app::AppState;
use crate::signature;

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Timeout,
    Read(String),
}

/// Reads the body the cap layer already limits. The deadline is a total on purpose:
/// tower-http's body timeout restarts with every chunk, so a sender dripping one byte at a time
/// could hold a connection for ever.
async fn read_body(body: Body, st: &AppState) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(st.body_timeout, body.collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Err(e)) if caused_by::<LengthLimitError>(&e) => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Whether `E` is anywhere in the chain of `err` (axum wraps the layer's error).
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The event label and outcome of one webhook answer, left in the response for [`count`].
#[derive(Clone, Debug)]
struct Counted {
    event: String,
    outcome: &'static str,
}

/// Counts every webhook answer in `capstan_webhook_deliveries_total`, the layers' own included:
/// a declared length over the cap (413 from the body-limit layer, which is given the same JSON
/// shape as the handler's answers), a shed or timed-out request (503 from [`unavailable`]).
pub async fn count(State(st): State<Arc<AppState>>, mut res: Response) -> Response {
    let counted = res.extensions_mut().remove::<Counted>();
    let (event, outcome) = match &counted {
        Some(c) => (c.event.as_str(), c.outcome),
        None if res.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            res = too_large(&st);
            ("-", "too_large")
        }
        None => ("-", "error"),
    };
    st.metrics.delivery(event, outcome);
    res
}

/// The answer when the webhook's layers refuse a request: shed (too many at once) or past the
/// handling deadline. 503 with `Retry-After`, so the sender (GitHub, `capstan replay`) records a
/// failed delivery it can send again. A shed request stored nothing; one cut at the deadline
/// either rolled back or, if it committed in that instant, its redelivery is a duplicate (200).
pub async fn unavailable(err: tower::BoxError) -> Response {
    let (outcome, why) = if err.is::<tower::load_shed::error::Overloaded>() {
        ("overloaded", "too many deliveries at once; redeliver later")
    } else if err.is::<tower::timeout::error::Elapsed>() {
        (
            "deadline",
            "the delivery was not handled in time; redeliver later",
        )
    } else {
        warn!(error = %err, "webhook request failed in a layer");
        (
            "error",
            "the delivery could not be handled; redeliver later",
        )
    };
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
        axum::Json(json!({ "error": why })),
    )
        .into_response();
    res.extensions_mut().insert(Counted {
        event: "-".into(),
        outcome,
    });
    res
}

/// What a shed request is told to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// GitHub's delivery ids are GUIDs; accept any short token so other senders can replay.
fn valid_delivery_id(id: &str) -> bool {
    id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Who sent a delivery: the forge whose headers, signature and payloads it carries.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    GitHub,
    /// Gitea or Forgejo: `X-Gitea-*` or `X-Forgejo-*` headers, a bare-hex signature.
    Gitea,
    /// GitLab: the secret token itself in `X-Gitlab-Token`, `X-Gitlab-Event`, and
    /// `X-Gitlab-Event-UUID` as the delivery id.
    GitLab,
}

impl Source {
    /// The header pairs naming the event and the delivery, first found wins (for the span only;
    /// the verified names come from [`Source::identify`]).
    fn span_headers(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Source::GitHub => (&["x-github-event"], &["x-github-delivery"]),
            Source::Gitea => (GITEA_EVENT, GITEA_DELIVERY),
            Source::GitLab => (&["x-gitlab-event"], &["x-gitlab-event-uuid"]),
        }
    }

    /// Checks the signature of `body`; `Err` is the refusal.
    fn verify(self, st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        match self {
            Source::GitHub => verify_github(st, headers, body),
            Source::Gitea => verify_gitea(st, headers, body),
            Source::GitLab => verify_gitlab(st, headers),
        }
    }

    /// The event and delivery id of a verified delivery.
    fn identify(self, headers: &HeaderMap) -> Result<(&str, &str), Refusal> {
        let (events, deliveries, names) = match self {
            Source::GitHub => (
                &["x-github-event"][..],
                &["x-github-delivery"][..],
                "X-GitHub-Event and X-GitHub-Delivery",
            ),
            Source::Gitea => (
                GITEA_EVENT,
                GITEA_DELIVERY,
                "X-Gitea-Event (or X-Forgejo-Event) and X-Gitea-Delivery (or X-Forgejo-Delivery)",
            ),
            Source::GitLab => (
                &["x-gitlab-event"][..],
                &["x-gitlab-event-uuid"][..],
                "X-Gitlab-Event and X-Gitlab-Event-UUID",
            ),
        };
        let (Some(event), Some(delivery)) =
            (agreed(headers, events)?, agreed(headers, deliveries)?)
        else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("{names} are required"),
                "bad_request",
            ));
        };
        Ok((event, delivery))
    }

    fn classify(
        self,
        event: &str,
        delivery_id: &str,
        body: &[u8],
        opts: &jobs::MappingOptions,
    ) -> Result<jobs::Classified, jobs::MalformedPayload> {
        match self {
            Source::GitHub => jobs::classify(event, delivery_id, body, opts),
            Source::Gitea => jobs::mapping::classify_gitea(event, delivery_id, body, opts),
            Source::GitLab => jobs::mapping::classify_gitlab(event, delivery_id, body, opts),
        }
    }

    /// Delivery ids are stored with the forge's name in front for every forge but GitHub (whose
    /// ids are stored as they always were), so one forge's ids can never collide with, or be
    /// replayed as, another's.
    fn stored_id(self, delivery_id: &str) -> String {
        match self {
            Source::GitHub => delivery_id.to_string(),
            Source::Gitea => format!("{}:{delivery_id}", ForgeKind::Gitea.as_str()),
            Source::GitLab => format!("{}:{delivery_id}", ForgeKind::GitLab.as_str()),
        }
    }
}

/// Forgejo's own header names first; Forgejo sends both, older Gitea only its own.
const GITEA_EVENT: &[&str] = &["x-forgejo-event", "x-gitea-event"];
const GITEA_DELIVERY: &[&str] = &["x-forgejo-delivery", "x-gitea-delivery"];
const GITEA_SIGNATURE: &[&str] = &["x-forgejo-signature", "x-gitea-signature"];

/// A refused request: the answer's status and error, and its outcome label.
struct Refusal {
    status: StatusCode,
    error: String,
    outcome: &'static str,
}

impl Refusal {
    fn response(self) -> (Response, &'static str) {
        (
            reply(self.status, json!({ "error": self.error })),
            self.outcome,
        )
    }
}

fn refuse(status: StatusCode, error: String, outcome: &'static str) -> Refusal {
    Refusal {
        status,
        error,
        outcome,
    }
}

/// The one value the headers `names` give: `None` when none is sent, a refusal when two are
/// sent and disagree (a relay could otherwise choose which one Capstan believes).
fn agreed<'h>(headers: &'h HeaderMap, names: &[&str]) -> Result<Option<&'h str>, Refusal> {
    let mut found: Option<&str> = None;
    for name in names {
        if let Some(v) = header_str(headers, name) {
            match found {
                Some(f) if f != v => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        format!("{} disagree", names.join(" and ")),
                        "bad_request",
                    ));
                }
                _ => found = Some(v),
            }
        }
    }
    Ok(found)
}

fn verify_github(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let Some(sig) = header_str(headers, "x-hub-signature-256") else {
        let why = if headers.contains_key("x-hub-signature") {
            "only X-Hub-Signature (SHA-1) was sent; X-Hub-Signature-256 is required"
        } else {
            "missing X-Hub-Signature-256"
        };
        warn!(why, "refused an unsigned delivery");
        return Err(refuse(StatusCode::UNAUTHORIZED, why.into(), "unauthorized"));
    };
    if !signature::verify(&st.secrets, sig, body) {
        warn!("refused a delivery with an invalid signature");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "signature does not match".into(),
            "unauthorized",
        ));
    }
    Ok(())
}

/// Every Gitea/Forgejo signature header sent must verify: Forgejo sends both names, and a
/// request with one good and one bad signature was altered on the way.
fn verify_gitea(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let sent: Vec<&str> = GITEA_SIGNATURE
        .iter()
        .filter_map(|name| header_str(headers, name))
        .collect();
    if sent.is_empty() {
        warn!("refused an unsigned delivery");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing X-Gitea-Signature (or X-Forgejo-Signature); set the webhook's secret".into(),
            "unauthorized",
        ));
    }
    if !sent
        .iter()
        .all(|sig| signature::verify_hex(&st.secrets, sig, body))
    {
        warn!("refused a delivery with an invalid signature");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "signature does not match".into(),
            "unauthorized",
        ));
    }
    Ok(())
}

/// GitLab's token is the secret itself (no signature over the body), compared in constant time
/// with every configured secret.
fn verify_gitlab(st: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = header_str(headers, "x-gitlab-token") else {
        warn!("refused a delivery without a token");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing X-Gitlab-Token; set the webhook's secret token".into(),
            "unauthorized",
        ));
    };
    if !signature::verify_token(&st.secrets, token) {
        warn!("refused a delivery with a wrong token");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "token does not match".into(),
            "unauthorized",
        ));
    }
    Ok(())
}

pub async fn webhook(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    receive(&st, Source::GitHub, headers, body).await
}

/// `POST /webhooks/gitlab`, served only for `--forge gitlab`.
pub async fn webhook_gitlab(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(&st, Source::GitLab, headers, body).await
}

/// `POST /webhooks/gitea`, served only for `--forge gitea`.
pub async fn webhook_gitea(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(&st, Source::Gitea, headers, body).await
}

async fn receive(st: &AppState, source: Source, headers: HeaderMap, body: Body) -> Response {
    let (events, deliveries) = source.span_headers();
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| header_str(&headers, n))
            .unwrap_or("-")
            .to_string()
    };
    let span = info_span!(
        "delivery",
        forge = ?source,
        delivery_id = %first(deliveries),
        event = %first(events),
        repo = field::Empty,
        outcome = field::Empty,
    );
    let (mut response, event, outcome) = handle(st, source, &headers, body)
        .instrument(span.clone())
        .await;
    span.record("outcome", outcome);
    response.extensions_mut().insert(Counted { event, outcome });
    response
}

/// The handler proper; returns the response, the event label for metrics (`-` until the
/// signature is verified, so unsigned traffic cannot grow label sets) and the outcome label.
async fn handle(
    st: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Body,
) -> (Response, String, &'static str) {
    let unverified = "-".to_string();
    let body = match read_body(body, st).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return (too_large(st), unverified, "too_large"),
        Err(BodyError::Timeout) => {
            let r = reply(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "body not received in time"}),
            );
            return (r, unverified, "timeout");
        }
        Err(BodyError::Read(e)) => {
            let r = reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("reading the body: {e}")}),
            );
            return (r, unverified, "bad_request");
        }
    };

    if let Err(refusal) = source.verify(st, headers, &body) {
        let (r, outcome) = refusal.response();
        return (r, unverified, outcome);
    }

    // GitHub can be told to send `application/x-www-form-urlencoded` (`payload=<json>`); that
    // body is not JSON, and saying so beats a parse error the operator has to decode. An absent
    // type is read as JSON, as other senders replaying deliveries often omit it.
    if let Some(ct) = header_str(headers, header::CONTENT_TYPE.as_str()) {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            let r = reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "the webhook must send Content type application/json (set it in the hook's settings)"}),
            );
            return (r, unverified, "unsupported_media_type");
        }
    }

    let (event, delivery_id) = match source.identify(headers) {
        Ok(ids) => ids,
        Err(refusal) => {
            let (r, outcome) = refusal.response();
            return (r, unverified, outcome);
        }
    };
    let event_label = event.to_string();
    if !valid_delivery_id(delivery_id) || event.len() > 64 {
        let what = match source {
            Source::GitHub => "malformed X-GitHub-Delivery or X-GitHub-Event",
            Source::Gitea => "malformed delivery id or event header",
            Source::GitLab => "malformed X-Gitlab-Event-UUID or X-Gitlab-Event",
        };
        let r = reply(StatusCode::BAD_REQUEST, json!({ "error": what }));
        return (r, unverified, "bad_request");
    }
    let stored_id = source.stored_id(delivery_id);

    let classified = match source.classify(event, delivery_id, &body, &st.mapping) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "refused a malformed payload");
            let r = reply(
                StatusCode::BAD_REQUEST,
                json!({"delivery": delivery_id, "error": e.to_string()}),
            );
            return (r, event_label, "bad_request");
        }
    };
    if let Some(repo) = &classified.repo {
        tracing::Span::current().record("repo", repo.as_str());
        if let Some(allow) = &st.allowlist
            && !allow.is_match(repo)
        {
            warn!(%repo, "repository is not on the allowlist");
            let r = reply(
                StatusCode::FORBIDDEN,
                json!({"delivery": delivery_id, "error": format!("repository {repo} is not on the allowlist")}),
            );
            return (r, event_label, "forbidden");
        }
    }

    let (outcome, detail, mut new_jobs) = match classified.decision {
        Decision::Jobs(j) => (DeliveryOutcome::Accepted, None, j),
        Decision::Ignored(why) => (DeliveryOutcome::Ignored, Some(why), vec![]),
        Decision::Rejected(why) => (DeliveryOutcome::Rejected, Some(why), vec![]),
    };
    for job in &mut new_jobs {
        if job.kind != jobs::PING {
            job.max_attempts = st.job_max_attempts;
        }
    }
    let delivery = NewDelivery {
        delivery_id: stored_id,
        event: event.to_string(),
        action: classified.action,
        repo: classified.repo,
        outcome,
        detail: detail.clone(),
    };
    let runs_here = new_jobs.iter().any(|j| st.wake_kinds.contains(&j.kind));
    match st.intake.record(delivery, new_jobs).await {
        Ok(RecordOutcome::Stored { .. })
            if failpoint::hit(failpoint::AFTER_DELIVERY_STORED).is_err() =>
        {
            // Stored, but answered as a failure: the redelivery is then a duplicate.
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"delivery": delivery_id, "error": "injected failure (test build); redeliver"}),
            );
            (r, event_label, "unavailable")
        }
        Ok(RecordOutcome::Stored { job_ids }) => {
            if !job_ids.is_empty()
                && runs_here
                && let Some(wake) = &st.wake
            {
                wake.notify_waiters();
            }
            info!(outcome = outcome.as_str(), jobs = ?job_ids, detail = detail.as_deref().unwrap_or(""), "delivery stored");
            let status = match outcome {
                DeliveryOutcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                _ if event == "ping" => StatusCode::OK,
                _ => StatusCode::ACCEPTED,
            };
            let r = reply(
                status,
                json!({"delivery": delivery_id, "outcome": outcome.as_str(), "jobs": job_ids, "detail": detail}),
            );
            (r, event_label, outcome.as_str())
        }
        Ok(RecordOutcome::Duplicate { first }) => {
            info!(first_outcome = %first.outcome, "duplicate delivery; nothing new stored");
            let r = reply(
                StatusCode::OK,
                json!({"delivery": delivery_id, "outcome": "duplicate", "first_outcome": first.outcome}),
            );
            (r, event_label, "duplicate")
        }
        Err(e) => {
            warn!(error = %e, "store unavailable; GitHub will record a failed delivery to redeliver");
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"delivery": delivery_id, "error": "store unavailable; redeliver later"}),
            );
            (r, event_label, "unavailable")
        }
    }
}

fn too_large(st: &AppState) -> Response {
    reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"error": format!("body exceeds {} bytes", st.max_body_bytes)}),
    )
}
