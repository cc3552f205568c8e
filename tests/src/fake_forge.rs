//! What the forge fakes share: a server on an ephemeral 127.0.0.1 port over state behind one
//! mutex (stopped when dropped), one request read once for routing (path segments decoded, so
//! `acme%2Fgitops` routes as one segment), every call recorded, and the page window of a listing.
//! Each fake keeps only its forge's contract: routes, status codes, field names, paging headers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::Value;

/// A running fake; the server stops when this is dropped.
pub struct FakeServer<S> {
    addr: SocketAddr,
    state: Arc<Mutex<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for FakeServer<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> FakeServer<S> {
    /// Serves `router(state)`: the fake's own router over the shared state.
    pub async fn start(state: S, router: impl FnOnce(Arc<Mutex<S>>) -> Router) -> FakeServer<S> {
        let state = Arc::new(Mutex::new(state));
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap()
    }
}

impl<S: Routes> FakeServer<S> {
    /// A fake whose every request goes through [`Routes::route`] and is recorded.
    pub async fn routed(state: S) -> FakeServer<S> {
        Self::start(state, |shared| {
            Router::new().fallback(handle::<S>).with_state(shared)
        })
        .await
    }
}

/// A pull (merge) request as the Gitea and GitLab fakes store it, `state` in the forge's own
/// words (Gitea: `open` or `closed`, with `merged`; GitLab: `opened`, `closed` or `merged`).
#[derive(Clone, Debug, Default)]
pub struct StoredPull {
    pub number: u64,
    pub state: String,
    /// Gitea's flag; GitLab says `merged` in `state`.
    pub merged: bool,
    pub title: String,
    pub body: String,
    pub author: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub merge_commit_sha: Option<String>,
}

/// A comment (a GitLab note) on pull request `number`.
#[derive(Clone, Debug)]
pub struct StoredComment {
    pub id: u64,
    pub number: u64,
    pub body: String,
    pub login: String,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Under the fake's API prefix (`/api/v1`, `/api/v4`), as sent (still escaped).
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
    pub status: u16,
}

/// One request as a fake routes it.
pub struct Incoming {
    pub method: Method,
    /// Under the API prefix, as sent.
    pub path: String,
    /// The path's segments under the prefix, each percent-decoded.
    pub segments: Vec<String>,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Option<Value>,
    /// `http://<host the client used>`, for the links the fake hands out.
    pub base: String,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A string field of the JSON body.
    pub fn field(&self, key: &str) -> Option<String> {
        self.body
            .as_ref()
            .and_then(|b| b[key].as_str())
            .map(str::to_string)
    }

    pub fn segs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// A fake forge's contract: where its API lives, how it answers, where calls are recorded.
pub trait Routes: Send + 'static {
    /// The API path prefix (`/api/v1`); requests outside it are answered by `route` with an
    /// empty segment list.
    const PREFIX: &'static str;
    fn route(&mut self, req: &Incoming) -> Response;
    fn calls(&mut self) -> &mut Vec<Call>;
}

async fn handle<S: Routes>(
    State(st): State<Arc<Mutex<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let full = uri.path().to_string();
    let under = full.strip_prefix(S::PREFIX);
    let path = under.unwrap_or(&full).to_string();
    let segments = match under {
        Some(rest) => rest
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
        None => Vec::new(),
    };
    let query_raw = uri.query().unwrap_or("").to_string();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("forge.invalid")
        .to_string();
    let req = Incoming {
        method: method.clone(),
        path: path.clone(),
        segments,
        query: query_pairs(&query_raw),
        headers,
        body: serde_json::from_slice(&body).ok(),
        base: format!("http://{host}"),
    };
    let mut g = st.lock().unwrap();
    let resp = g.route(&req);
    let status = resp.status().as_u16();
    g.calls().push(Call {
        method: method.to_string(),
        path,
        query: query_raw,
        body: req.body,
        status,
    });
    resp
}

/// A query string's pairs (the last of a repeated key wins).
pub fn query_pairs(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// `page` (1-based) and page size from a query: `size_key` (`per_page`, `limit`) defaults to
/// `default` and is clamped to `1..=max`, as the forges do.
pub fn page_params(
    query: &BTreeMap<String, String>,
    size_key: &str,
    default: usize,
    max: usize,
) -> (usize, usize) {
    let page = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let size = query
        .get(size_key)
        .and_then(|l| l.parse().ok())
        .unwrap_or(default)
        .clamp(1, max);
    (page, size)
}

/// The items of page `page` of size `size`, and how many pages there are (at least one).
pub fn page_window<T>(items: Vec<T>, page: usize, size: usize) -> (Vec<T>, usize) {
    let pages = items.len().div_ceil(size).max(1);
    let slice = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    (slice, pages)
}
