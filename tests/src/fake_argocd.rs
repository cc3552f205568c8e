//! An in-process fake of ArgoCD's REST API for the endpoints Capstan uses, on an ephemeral
//! 127.0.0.1 port, shaped after ArgoCD's swagger (`v1alpha1Application`,
//! `repositoryManifestResponse`, `applicationManagedResourcesResponse`, `runtimeError`).
//!
//! Status codes as ArgoCD gives them: 401 without a bearer token or with a wrong one; 403 for an
//! application that does not exist *or* that the token may not see (ArgoCD does not reveal which),
//! and such apps are left out of the list (`GET /api/v1/applications`);
//! 400 for a sync while another operation runs or malformed multi-source parameters; 500 (gRPC
//! `Unknown`) for a revision the repo server cannot resolve; 404 for paths ArgoCD does not serve.
//! A sync (dry or real) goes `Running` on the first poll of the app after it was requested and
//! reaches its configured final phase on a later one. Every call is recorded.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::served::{Served, query_pairs};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub status: u16,
}

impl Call {
    /// All values of query parameter `key`.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// How a requested sync ends.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    /// `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    pub message: Option<String>,
    /// `v1alpha1ResourceResult` objects.
    pub resources: Vec<Value>,
    /// Polls answered `Running` before the final phase (`u32::MAX`: never finishes).
    pub running_polls: u32,
}

impl Default for SyncOutcome {
    fn default() -> Self {
        SyncOutcome {
            phase: "Succeeded".into(),
            message: Some("successfully synced (all tasks run)".into()),
            resources: Vec::new(),
            running_polls: 1,
        }
    }
}

/// An Application the fake serves.
#[derive(Clone, Debug)]
pub struct FakeApp {
    pub name: String,
    /// `spec.project`.
    pub project: String,
    /// `spec.source` (single-source app) or `spec.sources` (multi-source app).
    pub sources: Vec<Value>,
    pub multi_source: bool,
    pub sync_status: String,
    pub health: String,
    /// Rendered manifests per revision (the key `""` answers requests without a revision).
    pub manifests: BTreeMap<String, Vec<Value>>,
    /// Live objects in the cluster.
    pub live: Vec<Value>,
    pub sync_outcome: SyncOutcome,
    /// The token may not see this app: answered exactly like an unknown one.
    pub forbidden: bool,
}

impl FakeApp {
    /// A single-source app from `repo_url` at `path`.
    pub fn new(name: &str, repo_url: &str, path: &str) -> FakeApp {
        FakeApp {
            name: name.into(),
            project: "default".into(),
            sources: vec![json!({"repoURL": repo_url, "path": path, "targetRevision": "main"})],
            multi_source: false,
            sync_status: "Synced".into(),
            health: "Healthy".into(),
            manifests: BTreeMap::new(),
            live: Vec::new(),
            sync_outcome: SyncOutcome::default(),
            forbidden: false,
        }
    }

    /// Makes it a multi-source app with these `v1alpha1ApplicationSource` objects.
    pub fn with_sources(mut self, sources: Vec<Value>) -> FakeApp {
        self.sources = sources;
        self.multi_source = true;
        self
    }

    pub fn with_manifests(mut self, revision: &str, objects: Vec<Value>) -> FakeApp {
        self.manifests.insert(revision.into(), objects);
        self
    }

    pub fn with_live(mut self, objects: Vec<Value>) -> FakeApp {
        self.live = objects;
        self
    }

    pub fn with_status(mut self, sync: &str, health: &str) -> FakeApp {
        self.sync_status = sync.into();
        self.health = health.into();
        self
    }

    pub fn with_sync_outcome(mut self, outcome: SyncOutcome) -> FakeApp {
        self.sync_outcome = outcome;
        self
    }

    pub fn with_project(mut self, project: &str) -> FakeApp {
        self.project = project.into();
        self
    }

    pub fn forbidden(mut self) -> FakeApp {
        self.forbidden = true;
        self
    }
}

#[derive(Debug)]
struct Operation {
    request: Value,
    polls: u32,
}

#[derive(Debug)]
struct AppState {
    app: FakeApp,
    operation: Option<Operation>,
    operation_state: Option<Value>,
}

struct Inner {
    token: String,
    apps: BTreeMap<String, AppState>,
    calls: Vec<Call>,
    clock: u32,
}

/// A running fake; the server stops when this is dropped.
pub struct FakeArgoCd {
    served: Served,
    inner: Arc<Mutex<Inner>>,
}

impl FakeArgoCd {
    /// Starts the fake accepting bearer `token`.
    pub async fn start(token: &str) -> FakeArgoCd {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.into(),
            apps: BTreeMap::new(),
            calls: Vec::new(),
            clock: 0,
        }));
        let router = Router::new().fallback(handle).with_state(inner.clone());
        let served = Served::start(router).await;
        FakeArgoCd { served, inner }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    pub fn add_app(&self, app: FakeApp) {
        self.inner.lock().unwrap().apps.insert(
            app.name.clone(),
            AppState {
                app,
                operation: None,
                operation_state: None,
            },
        );
    }

    /// Gives the app a finished earlier operation, as any synced app has.
    pub fn set_previous_operation(&self, app: &str, phase: &str) {
        let mut inner = self.inner.lock().unwrap();
        let ts = inner.tick();
        let st = inner.apps.get_mut(app).unwrap();
        st.operation_state = Some(json!({
            "phase": phase, "message": "earlier sync", "startedAt": ts, "finishedAt": ts,
            "operation": {"sync": {"revision": "0000000000000000000000000000000000000000"}},
            "syncResult": {"resources": [], "revision": "0000000000000000000000000000000000000000"}
        }));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }
}

impl Inner {
    /// A distinct, increasing RFC 3339 timestamp per call.
    fn tick(&mut self) -> String {
        self.clock += 1;
        format!(
            "2026-11-26T10:{:02}:{:02}Z",
            (self.clock / 60) % 60,
            self.clock % 60
        )
    }
}

fn runtime_error(status: StatusCode, code: i64, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": message, "code": code, "message": message, "details": []}),
    )
}

fn permission_denied() -> (StatusCode, Value) {
    runtime_error(StatusCode::FORBIDDEN, 7, "permission denied")
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query_pairs(&uri);
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let mut guard = inner.lock().unwrap();
    let inner = &mut *guard;
    let auth_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == inner.token);
    let (status, value) = if !auth_ok {
        runtime_error(
            StatusCode::UNAUTHORIZED,
            16,
            "invalid session: token signature is invalid",
        )
    } else {
        route(
            inner,
            &method,
            uri.path(),
            &query,
            body_json.as_ref(),
            body.is_empty(),
        )
    };
    inner.calls.push(Call {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        body: body_json,
        status: status.as_u16(),
    });
    (status, axum::Json(value)).into_response()
}

/// Percent-decodes one path segment.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
    body_empty: bool,
) -> (StatusCode, Value) {
    if path == "/api/v1/applications" && method == Method::GET {
        return list_applications(inner);
    }
    let Some(rest) = path.strip_prefix("/api/v1/applications/") else {
        return runtime_error(StatusCode::NOT_FOUND, 5, "Not Found");
    };
    let segs: Vec<String> = rest.split('/').map(decode).collect();
    let (name, sub) = match segs.as_slice() {
        [name] => (name.clone(), None),
        [name, sub] => (name.clone(), Some(sub.as_str())),
        _ => return runtime_error(StatusCode::NOT_FOUND, 5, "Not Found"),
    };
    let known = matches!(
        (method.as_str(), sub),
        ("GET", None | Some("manifests" | "managed-resources")) | ("POST", Some("sync"))
    );
    if !known {
        return runtime_error(StatusCode::NOT_FOUND, 5, "Not Found");
    }
    let ts = inner.tick();
    let Some(st) = inner.apps.get_mut(&name).filter(|s| !s.app.forbidden) else {
        return permission_denied();
    };
    match sub {
        None => {
            advance_operation(st, &ts);
            (StatusCode::OK, application_json(st))
        }
        Some("manifests") => manifests(st, query),
        Some("managed-resources") => (StatusCode::OK, managed_resources(st)),
        Some(_) => sync(st, body, body_empty),
    }
}

/// `v1alpha1ApplicationList` of the apps the token may see (forbidden ones are left out, as
/// ArgoCD filters the list by RBAC); `items` is `null` when there are none, as ArgoCD sends it.
fn list_applications(inner: &mut Inner) -> (StatusCode, Value) {
    let items: Vec<Value> = inner
        .apps
        .values()
        .filter(|s| !s.app.forbidden)
        .map(application_json)
        .collect();
    let items = if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    };
    (
        StatusCode::OK,
        json!({"metadata": {"resourceVersion": "1000"}, "items": items}),
    )
}

/// The controller's view of a requested operation, advanced once per poll of the app.
fn advance_operation(st: &mut AppState, ts: &str) {
    let outcome = st.app.sync_outcome.clone();
    let Some(op) = st.operation.as_mut() else {
        return;
    };
    if op.polls == 0 {
        st.operation_state = Some(json!({
            "phase": "Running", "message": "one or more tasks are running",
            "startedAt": ts, "operation": op.request
        }));
    }
    op.polls = op.polls.saturating_add(1);
    if outcome.running_polls != u32::MAX && op.polls > outcome.running_polls {
        let started = st
            .operation_state
            .as_ref()
            .and_then(|s| s.get("startedAt").cloned())
            .unwrap_or(json!(ts));
        let sync = op.request.get("sync").cloned().unwrap_or(json!({}));
        let mut state = json!({
            "phase": outcome.phase, "startedAt": started, "finishedAt": ts,
            "operation": op.request,
            "syncResult": {
                "resources": outcome.resources,
                "revision": sync.get("revision").cloned().unwrap_or(json!("")),
            }
        });
        if let Some(m) = &outcome.message {
            state["message"] = json!(m);
        }
        st.operation_state = Some(state);
        st.operation = None;
    }
}

fn application_json(st: &AppState) -> Value {
    let app = &st.app;
    let spec = if app.multi_source {
        json!({"project": app.project, "sources": app.sources,
               "destination": {"server": "https://kubernetes.default.svc", "namespace": app.name}})
    } else {
        json!({"project": app.project, "source": app.sources.first().cloned().unwrap_or(json!({})),
               "destination": {"server": "https://kubernetes.default.svc", "namespace": app.name}})
    };
    let mut status = json!({
        "sync": {"status": app.sync_status, "revision": "0000000000000000000000000000000000000000"},
        "health": {"status": app.health},
    });
    if let Some(s) = &st.operation_state {
        status["operationState"] = s.clone();
    }
    let mut v = json!({
        "metadata": {"name": app.name, "namespace": "argocd"},
        "spec": spec,
        "status": status,
    });
    if let Some(op) = &st.operation {
        v["operation"] = op.request.clone();
    }
    v
}

fn manifests(st: &AppState, query: &[(String, String)]) -> (StatusCode, Value) {
    let values = |k: &str| -> Vec<&str> {
        query
            .iter()
            .filter(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let revisions = values("revisions");
    let positions = values("sourcePositions");
    let revision = if st.app.multi_source {
        if revisions.len() != positions.len() {
            return runtime_error(
                StatusCode::BAD_REQUEST,
                3,
                "number of source positions and revisions must match",
            );
        }
        for p in &positions {
            match p.parse::<usize>() {
                Ok(n) if (1..=st.app.sources.len()).contains(&n) => {}
                _ => {
                    return runtime_error(
                        StatusCode::BAD_REQUEST,
                        3,
                        &format!("source position {p} is out of range"),
                    );
                }
            }
        }
        revisions.first().copied().unwrap_or("")
    } else {
        values("revision").first().copied().unwrap_or("")
    };
    match st.app.manifests.get(revision) {
        Some(objs) => (
            StatusCode::OK,
            json!({
                "manifests": objs.iter().map(Value::to_string).collect::<Vec<_>>(),
                "namespace": st.app.name,
                "server": "https://kubernetes.default.svc",
                "revision": revision,
                "sourceType": "Kustomize",
            }),
        ),
        None => runtime_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            &format!(
                "rpc error: code = Unknown desc = unable to resolve '{revision}' to a commit SHA"
            ),
        ),
    }
}

fn object_key(v: &Value) -> (String, String, String, String) {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let api = s("/apiVersion");
    let group = api
        .rsplit_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default();
    (
        group,
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

/// One `v1alpha1ResourceDiff` per object the app manages: live objects and target objects.
fn managed_resources(st: &AppState) -> Value {
    let target = st.app.manifests.get("").cloned().unwrap_or_default();
    let mut items: BTreeMap<(String, String, String, String), Value> = BTreeMap::new();
    for t in &target {
        let (g, k, ns, n) = object_key(t);
        let ns = if ns.is_empty() {
            st.app.name.clone()
        } else {
            ns
        };
        items.insert(
            (g.clone(), k.clone(), ns.clone(), n.clone()),
            json!({"group": g, "kind": k, "namespace": ns, "name": n,
                   "targetState": t.to_string(), "normalizedLiveState": "null",
                   "liveState": "null", "modified": true, "hook": false}),
        );
    }
    for l in &st.app.live {
        let key = object_key(l);
        let (g, k, ns, n) = key.clone();
        let entry = items.entry(key).or_insert_with(|| {
            json!({"group": g, "kind": k, "namespace": ns, "name": n,
                   "targetState": "null", "modified": true, "hook": false})
        });
        entry["liveState"] = json!(l.to_string());
        entry["normalizedLiveState"] = json!(l.to_string());
        entry["resourceVersion"] = json!("12345");
    }
    json!({"items": items.into_values().collect::<Vec<_>>()})
}

fn sync(st: &mut AppState, body: Option<&Value>, body_empty: bool) -> (StatusCode, Value) {
    let Some(body) = body else {
        let msg = if body_empty {
            "request body is required"
        } else {
            "invalid JSON body"
        };
        return runtime_error(StatusCode::BAD_REQUEST, 3, msg);
    };
    if st.operation.is_some() {
        return runtime_error(
            StatusCode::BAD_REQUEST,
            9,
            "another operation is already in progress",
        );
    }
    let mut sync = json!({
        "dryRun": body.get("dryRun").cloned().unwrap_or(json!(false)),
        "prune": body.get("prune").cloned().unwrap_or(json!(false)),
    });
    for k in ["revision", "revisions", "sourcePositions"] {
        if let Some(v) = body.get(k) {
            sync[k] = v.clone();
        }
    }
    st.operation = Some(Operation {
        request: json!({"sync": sync, "initiatedBy": {"username": "capstan"}}),
        polls: 0,
    });
    (StatusCode::OK, application_json(st))
}
