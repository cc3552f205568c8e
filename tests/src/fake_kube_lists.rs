//! A fake Kubernetes API server for the read side (the dashboard's registry and cluster pages),
//! speaking the real list and watch paths: a list answers with the
//! `…List` kind, `metadata.resourceVersion` and the items (filtered by `labelSelector` equality
//! terms); a watch (`watch=true`) stays open without events, as an idle API server does. Every
//! request is recorded so tests assert what the dashboard asked for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct FakeKube {
    /// Collection path (`/api/v1/services`) → (list kind, items).
    pub collections: Mutex<BTreeMap<String, (String, Vec<Value>)>>,
    pub seen: Mutex<Vec<Seen>>,
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn labels_match(item: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        item.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            == Some(v)
    })
}

impl FakeKube {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeKube::default())
    }

    /// Serve `items` at a collection path, e.g. `/api/v1/services`.
    pub fn set(&self, path: &str, kind: &str, items: Vec<Value>) {
        if let Ok(mut c) = self.collections.lock() {
            c.insert(path.to_string(), (kind.to_string(), items));
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }
}

async fn handle(State(k): State<Arc<FakeKube>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = query_map(req.uri().query());
    if let Ok(mut s) = k.seen.lock() {
        s.push(Seen {
            method: req.method().to_string(),
            path: path.clone(),
            query: query.clone(),
        });
    }
    if req.method() != axum::http::Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, "only reads").into_response();
    }
    let Some((kind, items)) = k
        .collections
        .lock()
        .ok()
        .and_then(|c| c.get(&path).cloned())
    else {
        let status = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":format!("the server could not find the requested resource ({path})"),
            "reason":"NotFound","code":404});
        return (StatusCode::NOT_FOUND, axum::Json(status)).into_response();
    };
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        // An idle watch: headers now, no events, never ends (the client's timeout ends it).
        let stream = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let selected: Vec<Value> = match query.get("labelSelector") {
        Some(sel) => items.into_iter().filter(|i| labels_match(i, sel)).collect(),
        None => items,
    };
    axum::Json(json!({
        "apiVersion": if path.starts_with("/api/") { "v1".to_string() } else {
            path.split('/').skip(2).take(2).collect::<Vec<_>>().join("/")
        },
        "kind": kind,
        "metadata": {"resourceVersion": "100"},
        "items": selected,
    }))
    .into_response()
}
