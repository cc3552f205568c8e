//! A mock Kubernetes API server for the server-side dry-run check: discovery (`/api`, `/api/v1`,
//! `/apis`, `/apis/{group}/{version}`) for a fixed set of kinds, and server-side apply PATCHes on
//! the real resource paths, answered like the API server does — the applied object on success,
//! or a `Status` with code, reason, message and `details.causes` on refusal.
//!
//! It never pretends to store anything. A PATCH without `dryRun=All` is answered 500 ("mock
//! refuses real writes") and recorded, so tests can assert that no write was ever attempted.
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

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: String,
    pub status: u16,
}

impl Call {
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A kind the mock serves.
#[derive(Clone, Debug)]
pub struct Kind {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    pub namespaced: bool,
}

fn kind(group: &str, version: &str, kind: &str, resource: &str, namespaced: bool) -> Kind {
    Kind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource: resource.into(),
        namespaced,
    }
}

/// The built-in kinds the tests use.
pub fn builtin_kinds() -> Vec<Kind> {
    vec![
        kind("", "v1", "Namespace", "namespaces", false),
        kind("", "v1", "ConfigMap", "configmaps", true),
        kind("", "v1", "Secret", "secrets", true),
        kind("", "v1", "Service", "services", true),
        kind("apps", "v1", "Deployment", "deployments", true),
        kind(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
    ]
}

struct Inner {
    kinds: Vec<Kind>,
    namespaces: Vec<String>,
    /// (resource, name) → the `Status` to refuse the apply with.
    refusals: BTreeMap<(String, String), Value>,
    calls: Vec<Call>,
}

/// A running mock; stops when dropped.
pub struct FakeKube {
    served: Served,
    inner: Arc<Mutex<Inner>>,
}

impl FakeKube {
    /// Serves `kinds`; `namespaces` exist.
    pub async fn start(kinds: Vec<Kind>, namespaces: &[&str]) -> FakeKube {
        let inner = Arc::new(Mutex::new(Inner {
            kinds,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            refusals: BTreeMap::new(),
            calls: Vec::new(),
        }));
        let router = Router::new().fallback(handle).with_state(inner.clone());
        let served = Served::start(router).await;
        FakeKube { served, inner }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    /// Refuse applying `resource`/`name` with this `Status` object.
    pub fn refuse(&self, resource: &str, name: &str, status: Value) {
        self.inner
            .lock()
            .unwrap()
            .refusals
            .insert((resource.into(), name.into()), status);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Every request that could change state (anything but GET).
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method != "GET")
            .collect()
    }
}

/// A `Status` object as the API server sends it.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query_pairs(&uri);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut guard = inner.lock().unwrap();
    let inner = &mut *guard;
    let (status, value) = route(
        inner,
        &method,
        uri.path(),
        &query,
        content_type.as_deref(),
        &body,
    );
    inner.calls.push(Call {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        content_type,
        body,
        status: status.as_u16(),
    });
    (status, axum::Json(value)).into_response()
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    )
}

fn resource_list(kinds: &[&Kind], group_version: &str) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": kinds.iter().map(|k| json!({
            "name": k.resource, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        })).collect::<Vec<_>>()
    })
}

fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Discovery.
    if method == Method::GET {
        return match segs.as_slice() {
            ["api"] => (
                StatusCode::OK,
                json!({"kind": "APIVersions", "versions": ["v1"]}),
            ),
            ["apis"] => {
                let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for k in inner.kinds.iter().filter(|k| !k.group.is_empty()) {
                    groups.entry(&k.group).or_default().push(&k.version);
                }
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(g, vs)| {
                        let versions: Vec<Value> = vs
                            .iter()
                            .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                            .collect();
                        json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                    })
                    .collect();
                (
                    StatusCode::OK,
                    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                )
            }
            ["api", v] => {
                let ks: Vec<&Kind> = inner
                    .kinds
                    .iter()
                    .filter(|k| k.group.is_empty() && k.version == *v)
                    .collect();
                if ks.is_empty() {
                    not_found()
                } else {
                    (StatusCode::OK, resource_list(&ks, v))
                }
            }
            ["apis", g, v] => {
                let ks: Vec<&Kind> = inner
                    .kinds
                    .iter()
                    .filter(|k| k.group == *g && k.version == *v)
                    .collect();
                if ks.is_empty() {
                    not_found()
                } else {
                    (StatusCode::OK, resource_list(&ks, &format!("{g}/{v}")))
                }
            }
            _ => not_found(),
        };
    }
    if method != Method::PATCH {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            status(
                405,
                "MethodNotAllowed",
                "the mock serves discovery and PATCH only",
                None,
            ),
        );
    }
    // /api/v1[/namespaces/{ns}]/{resource}/{name} or /apis/{g}/{v}[/namespaces/{ns}]/{resource}/{name}
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return not_found(),
    };
    let (ns, resource, name) = match rest {
        ["namespaces", ns, r, n] => (Some(*ns), *r, *n),
        [r, n] => (None, *r, *n),
        _ => return not_found(),
    };
    let Some(k) = inner
        .kinds
        .iter()
        .find(|k| k.group == group && k.version == version && k.resource == resource)
        .cloned()
    else {
        return not_found();
    };
    if k.namespaced != ns.is_some() {
        return not_found();
    }
    let q = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if q("dryRun") != Some("All") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            status(
                500,
                "InternalError",
                "mock refuses real writes: dryRun=All missing",
                None,
            ),
        );
    }
    if content_type != Some("application/apply-patch+yaml") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            status(
                415,
                "UnsupportedMediaType",
                "expected application/apply-patch+yaml",
                None,
            ),
        );
    }
    if q("fieldManager").is_none_or(str::is_empty) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            status(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                None,
            ),
        );
    }
    // The apply body is YAML; JSON is YAML, and what kube sends.
    let Ok(obj) = serde_json::from_str::<Value>(body) else {
        return (
            StatusCode::BAD_REQUEST,
            status(
                400,
                "BadRequest",
                "error decoding YAML: the mock reads JSON-compatible YAML only",
                None,
            ),
        );
    };
    if let Some(ns) = ns
        && !inner.namespaces.iter().any(|n| n == ns)
    {
        return (
            StatusCode::NOT_FOUND,
            status(
                404,
                "NotFound",
                &format!("namespaces \"{ns}\" not found"),
                Some(json!({"name": ns, "kind": "namespaces"})),
            ),
        );
    }
    if let Some(s) = inner
        .refusals
        .get(&(resource.to_string(), name.to_string()))
    {
        let code = s.get("code").and_then(Value::as_u64).unwrap_or(500) as u16;
        return (StatusCode::from_u16(code).unwrap(), s.clone());
    }
    let mut applied = obj;
    applied["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    applied["metadata"]["resourceVersion"] = json!("1");
    (StatusCode::OK, applied)
}
