//! The checks: each takes the loaded tree (or rendered objects) and returns every problem it
//! finds, as a sentence naming the file or Application concerned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::tree::{
    BUILTIN_GROUPS, PREINSTALLED_GROUPS, PROJECTS_DIR, ROOT_APP, Tree, describe, glob, group, kind,
    kustomize, name, read_yaml, walk,
};

// ------------------------------------------------------------------------------------------
// Checks. Each returns the problems it found; the tree's own load problems come first.

pub(crate) fn check_paths(tree: &Tree) -> Vec<String> {
    let mut problems = tree.problems.clone();
    if tree.children.len() < 2 {
        problems.push(format!("{ROOT_APP}: the app-of-apps has no children"));
    }
    problems
}

pub(crate) fn check_projects(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    for (_, app) in tree.all_apps() {
        let where_ = &app.origin;
        let project_name = app.project();
        if project_name.is_empty() || project_name == "default" {
            problems.push(format!(
                "{where_}: Application {} uses project {:?}; every Application needs its own project",
                app.name,
                if project_name.is_empty() { "default" } else { project_name }
            ));
            continue;
        }
        let Some(project) = tree.projects.get(project_name) else {
            problems.push(format!(
                "{where_}: Application {} uses project {project_name}, which {PROJECTS_DIR} does not define",
                app.name
            ));
            continue;
        };
        let spec = &project["spec"];
        let repos: Vec<&str> = spec["sourceRepos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for s in app.sources() {
            let repo = s["repoURL"].as_str().unwrap_or("");
            if !repos.iter().any(|p| glob(p, repo)) {
                problems.push(format!(
                    "{where_}: project {project_name} does not allow source repository {repo}"
                ));
            }
            if s.get("chart").is_some() {
                let rev = s["targetRevision"].as_str().unwrap_or("");
                if rev.is_empty() || rev.contains('*') || rev == "latest" || rev == "HEAD" {
                    problems.push(format!(
                        "{where_}: chart {} is not pinned to a version ({rev:?})",
                        s["chart"]
                    ));
                }
            }
        }
        let allows_ns = |ns: &str| {
            spec["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| {
                    d["server"]
                        .as_str()
                        .is_some_and(|s| glob(s, app.dest_server()))
                        && d["namespace"].as_str().is_some_and(|p| glob(p, ns))
                })
        };
        if !allows_ns(app.dest_namespace()) {
            problems.push(format!(
                "{where_}: project {project_name} does not allow destination {} namespace {}",
                app.dest_server(),
                app.dest_namespace()
            ));
        }
        let listed = |list: &str, o: &Value| {
            spec[list].as_array().into_iter().flatten().any(|e| {
                glob(e["group"].as_str().unwrap_or(""), group(o))
                    && glob(e["kind"].as_str().unwrap_or(""), kind(o))
            })
        };
        for (o, ns) in tree.objects_of(app) {
            if ns.is_empty() {
                if !listed("clusterResourceWhitelist", &o) {
                    problems.push(format!(
                        "{where_}: project {project_name} does not allow cluster-scoped {} (rendered by {})",
                        describe(&o),
                        app.name
                    ));
                }
                continue;
            }
            if !allows_ns(&ns) {
                problems.push(format!(
                    "{where_}: project {project_name} does not allow namespace {ns} for {} (rendered by {})",
                    describe(&o),
                    app.name
                ));
            }
            let has_whitelist = spec["namespaceResourceWhitelist"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            if (has_whitelist && !listed("namespaceResourceWhitelist", &o))
                || listed("namespaceResourceBlacklist", &o)
            {
                problems.push(format!(
                    "{where_}: project {project_name} does not allow kind {} (rendered by {})",
                    kind(&o),
                    app.name
                ));
            }
        }
    }
    problems
}

pub(crate) fn check_sync_waves(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    // Which child provides which CRD group: CRDs it renders, or operators it deploys
    // (operator.yaml's crdGroups, the params of a git files generator).
    let mut provider: BTreeMap<String, (String, i64)> = BTreeMap::new();
    // The same per cluster: a CRD group is usable on a cluster only where it is installed.
    let mut on_cluster: BTreeSet<(String, String)> = BTreeSet::new();
    for child in tree.children.iter().skip(1) {
        for app in &child.apps {
            let mut groups: Vec<String> = app.params["crdGroups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            groups.extend(
                tree.objects_of(app)
                    .filter(|(o, _)| kind(o) == "CustomResourceDefinition")
                    .filter_map(|(o, _)| o["spec"]["group"].as_str().map(str::to_string)),
            );
            for g in groups {
                on_cluster.insert((app.dest_server().to_string(), g.clone()));
                if let Some((other, _)) = provider.get(&g)
                    && other != &child.name
                {
                    problems.push(format!(
                        "CRD group {g} is installed by both {other} and {}",
                        child.name
                    ));
                }
                provider.insert(g, (child.name.clone(), child.wave));
            }
        }
    }
    for child in tree.children.iter().skip(1) {
        let used: BTreeSet<String> = child
            .apps
            .iter()
            .flat_map(|a| tree.objects_of(a))
            .map(|(o, _)| group(&o).to_string())
            .collect();
        for g in used {
            if BUILTIN_GROUPS.contains(&g.as_str()) || PREINSTALLED_GROUPS.contains(&g.as_str()) {
                continue;
            }
            match provider.get(&g) {
                None => problems.push(format!(
                    "{} uses API group {g}, but no Application installs its CRDs",
                    child.name
                )),
                Some((p, _)) if p == &child.name => {}
                Some((p, wave)) if *wave >= child.wave => problems.push(format!(
                    "{} (sync wave {}) uses API group {g} from {p} (sync wave {wave}): it must come in a later wave",
                    child.name, child.wave
                )),
                Some(_) => {}
            }
        }
    }
    for child in tree.children.iter().skip(1) {
        for app in &child.apps {
            let used: BTreeSet<String> = tree
                .objects_of(app)
                .map(|(o, _)| group(&o).to_string())
                .collect();
            for g in used {
                if BUILTIN_GROUPS.contains(&g.as_str())
                    || PREINSTALLED_GROUPS.contains(&g.as_str())
                    || !provider.contains_key(&g)
                {
                    continue;
                }
                let server = app.dest_server().to_string();
                if !on_cluster.contains(&(server.clone(), g.clone())) {
                    problems.push(format!(
                        "{} uses API group {g} on {server}, but no Application installs its CRDs on that cluster",
                        app.name
                    ));
                }
            }
        }
    }
    // A RollingSync ApplicationSet never syncs an app that no step selects.
    for (_, app) in tree.all_apps() {
        if !app.steps.is_empty() && !app.steps.iter().any(|step| step_selects(step, &app.labels)) {
            problems.push(format!(
                "{}: labels {} are selected by no RollingSync step, so it would never sync",
                app.origin, app.labels
            ));
        }
    }
    // Operators: dependencies exist and come in earlier waves.
    let operators: BTreeMap<&str, &Value> = tree
        .all_apps()
        .filter(|(_, a)| a.params.get("chart").is_some())
        .map(|(_, a)| (a.params["name"].as_str().unwrap_or(""), &a.params))
        .collect();
    for (op, params) in &operators {
        let wave = params["syncWave"].as_i64();
        let Some(wave) = wave else {
            problems.push(format!("operator {op}: syncWave is missing"));
            continue;
        };
        for dep in params["dependencies"].as_array().into_iter().flatten() {
            let dep = dep.as_str().unwrap_or("");
            match operators.get(dep).and_then(|d| d["syncWave"].as_i64()) {
                None => problems.push(format!(
                    "operator {op} depends on {dep}, which is not an operator here"
                )),
                Some(dw) if dw >= wave => problems.push(format!(
                    "operator {op} (syncWave {wave}) depends on {dep} (syncWave {dw}): it must have a higher wave"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// A RollingSync step's matchExpressions (In / NotIn) against an app's labels.
pub(crate) fn step_selects(step: &Value, labels: &Value) -> bool {
    step["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let value = labels[e["key"].as_str().unwrap_or("")].as_str();
            let listed = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v.as_str() == value);
            match e["operator"].as_str() {
                Some("In") => listed,
                Some("NotIn") => !listed,
                _ => false,
            }
        })
}

/// Every kustomization in the tree, rendered: container checks cover what no Application
/// reaches too (other environments' overlays, bases).
/// Workspace members: folders that hold code and its fixtures, never GitOps content.
const RUST_WORKSPACE: &[&str] = &["server", "worker", "tests", "target"];

pub(crate) fn all_rendered(root: &Path) -> (Vec<(String, Value)>, Vec<String>) {
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (path, is_dir) in entries {
        if is_dir || !path.ends_with("kustomization.yaml") {
            continue;
        }
        // The Rust workspace's own test inputs (the kustomize conformance suite) are not part of
        // the GitOps tree, and many of them are deliberately invalid.
        if RUST_WORKSPACE
            .iter()
            .any(|m| path.starts_with(&format!("{m}/")))
        {
            continue;
        }
        let dir = path
            .trim_end_matches("kustomization.yaml")
            .trim_end_matches('/');
        match kustomize(&root.join(dir)) {
            Ok(objs) => objects.extend(objs.into_iter().map(|o| (dir.to_string(), o))),
            Err(e) => problems.push(format!("{dir}: does not build: {e}")),
        }
    }
    (objects, problems)
}

pub(crate) fn pod_spec(o: &Value) -> Option<&Value> {
    match kind(o) {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&o["spec"]["template"]["spec"])
        }
        "CronJob" => Some(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        "Pod" => Some(&o["spec"]),
        _ => None,
    }
}

/// `repo/name:tag`, `repo/name@sha256:...`; a port in the registry is not a tag.
pub(crate) fn image_pinned(image: &str) -> Result<(), String> {
    if image.contains('@') {
        return Ok(());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Err(format!("image {image} has no tag")),
        Some((_, "latest")) => Err(format!("image {image} uses the mutable tag latest")),
        Some((_, "")) => Err(format!("image {image} has an empty tag")),
        Some(_) => Ok(()),
    }
}

pub(crate) fn check_workloads(objects: &[(String, Value)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (dir, o) in objects {
        let Some(spec) = pod_spec(o) else {
            continue;
        };
        let at = format!("{dir}: {}", describe(o));
        let pod_sc = &spec["securityContext"];
        for flag in ["hostNetwork", "hostPID", "hostIPC"] {
            if spec[flag].as_bool() == Some(true) {
                problems.push(format!("{at}: {flag} is set"));
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if v.get("hostPath").is_some() {
                problems.push(format!("{at}: volume {} is a hostPath", v["name"]));
            }
        }
        let containers = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|k| spec[*k].as_array().into_iter().flatten());
        for c in containers {
            let at = format!("{at} container {}", c["name"].as_str().unwrap_or("?"));
            if let Err(e) = image_pinned(c["image"].as_str().unwrap_or("")) {
                problems.push(format!("{at}: {e}"));
            }
            for (section, res) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                if c["resources"][section][res].is_null() {
                    problems.push(format!("{at}: no resources.{section}.{res}"));
                }
            }
            let sc = &c["securityContext"];
            let either = |k: &str| if sc[k].is_null() { &pod_sc[k] } else { &sc[k] };
            if either("runAsNonRoot").as_bool() != Some(true) {
                problems.push(format!("{at}: runAsNonRoot is not true"));
            }
            if either("runAsUser").as_i64() == Some(0) {
                problems.push(format!("{at}: runs as uid 0"));
            }
            if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
                problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
            }
            if sc["privileged"].as_bool() == Some(true) {
                problems.push(format!("{at}: privileged"));
            }
            let drops_all = sc["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")));
            if !drops_all {
                problems.push(format!("{at}: capabilities do not drop ALL"));
            }
            if either("seccompProfile")["type"].as_str() != Some("RuntimeDefault") {
                problems.push(format!("{at}: seccompProfile is not RuntimeDefault"));
            }
            if kind(o) == "Deployment"
                && !spec["initContainers"]
                    .as_array()
                    .is_some_and(|i| i.contains(c))
            {
                for probe in ["readinessProbe", "livenessProbe"] {
                    if c[probe].is_null() {
                        problems.push(format!("{at}: no {probe}"));
                    }
                }
            }
        }
    }
    problems
}

pub(crate) fn check_exposure(objects: &[(String, Value)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (dir, o) in objects {
        let at = format!("{dir}: {}", describe(o));
        match kind(o) {
            "Secret" => problems.push(format!(
                "{at}: plaintext Secret in Git (use a SealedSecret)"
            )),
            "Ingress" => {
                let tls_hosts: BTreeSet<&str> = o["spec"]["tls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|t| t["hosts"].as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect();
                for rule in o["spec"]["rules"].as_array().into_iter().flatten() {
                    let host = rule["host"].as_str().unwrap_or("");
                    if host.is_empty() || !tls_hosts.contains(host) {
                        problems.push(format!("{at}: host {host:?} is not covered by TLS"));
                    }
                }
            }
            "Service" => {
                let t = o["spec"]["type"].as_str().unwrap_or("ClusterIP");
                if t == "LoadBalancer" || t == "NodePort" {
                    problems.push(format!("{at}: Service type {t}"));
                }
            }
            _ => {}
        }
    }
    problems
}

/// Every namespace an Application deploys to has a NetworkPolicy and is created by some app.
pub(crate) fn check_namespaces(tree: &Tree) -> Vec<String> {
    // Per cluster (destination server): a namespace created or policed on one cluster does not
    // exist on another.
    let mut used: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut policed = BTreeSet::new();
    let mut created = BTreeSet::new();
    for (_, app) in tree.all_apps() {
        let server = app.dest_server().to_string();
        // Chart-based apps deploy into their destination namespace too.
        if app.sources().iter().any(|s| s.get("chart").is_some()) {
            used.insert(
                (server.clone(), app.dest_namespace().to_string()),
                app.name.clone(),
            );
        }
        for (o, ns) in tree.objects_of(app) {
            match kind(&o) {
                "Namespace" => {
                    created.insert((server.clone(), name(&o).to_string()));
                }
                "NetworkPolicy" => {
                    policed.insert((server.clone(), ns.clone()));
                }
                _ => {}
            }
            if !ns.is_empty() {
                used.entry((server.clone(), ns))
                    .or_insert_with(|| app.name.clone());
            }
        }
    }
    let mut problems = Vec::new();
    for (key, app) in used {
        let (server, ns) = &key;
        if !policed.contains(&key) {
            problems.push(format!(
                "namespace {ns} (used by {app}) has no NetworkPolicy on {server}"
            ));
        }
        if !created.contains(&key) && ns != "kube-system" {
            problems.push(format!(
                "namespace {ns} (used by {app}) is not created by any Application on {server}"
            ));
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------
// .capstan.yaml: promotion rules point at real overlays, permissions are GitHub's levels.

pub(crate) fn check_capstan_yaml(root: &Path) -> Vec<String> {
    let file = root.join(".capstan.yaml");
    let docs = match read_yaml(&file) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    let Some(cfg) = docs.first() else {
        return vec![".capstan.yaml: empty".into()];
    };
    let mut problems = Vec::new();
    let envs: Vec<&str> = cfg["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    if envs.is_empty() {
        problems.push(".capstan.yaml: no environments".into());
    }
    for rule in cfg["promotion"]["rules"].as_array().into_iter().flatten() {
        let rule_name = rule["name"].as_str().unwrap_or("?");
        let mut images = Vec::new();
        for end in ["from", "to"] {
            let env = rule[end]["environment"].as_str().unwrap_or("");
            if !envs.contains(&env) {
                problems.push(format!(
                    "rule {rule_name}: {end}.environment {env:?} is not an environment"
                ));
            }
            let path = rule[end]["path"].as_str().unwrap_or("");
            let k = root.join(path).join("kustomization.yaml");
            match read_yaml(&k) {
                Ok(docs) => images.push(
                    docs.first()
                        .map(|d| {
                            d["images"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|i| i["name"].as_str().map(str::to_string))
                                .collect::<BTreeSet<_>>()
                        })
                        .unwrap_or_default(),
                ),
                Err(_) => problems.push(format!(
                    "rule {rule_name}: {end}.path {path} has no kustomization.yaml"
                )),
            }
        }
        let from_pos = envs
            .iter()
            .position(|e| Some(*e) == rule["from"]["environment"].as_str());
        let to_pos = envs
            .iter()
            .position(|e| Some(*e) == rule["to"]["environment"].as_str());
        if let (Some(f), Some(t)) = (from_pos, to_pos)
            && f >= t
        {
            problems.push(format!("rule {rule_name}: promotes backwards ({f} -> {t})"));
        }
        let copies_images = rule["copy"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x.as_str() == Some("images")));
        if copies_images
            && let [from, to] = images.as_slice()
            && (from.is_empty() || from != to)
        {
            problems.push(format!(
                "rule {rule_name}: copies images, but the two kustomizations list {from:?} and {to:?}"
            ));
        }
    }
    const LEVELS: &[&str] = &["read", "triage", "write", "maintain", "admin"];
    for (command, level) in cfg["commands"]["permissions"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !level.as_str().is_some_and(|l| LEVELS.contains(&l)) {
            problems.push(format!(
                "commands.permissions.{command}: {level} is not one of {LEVELS:?}"
            ));
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------
// apiVersions: nothing deprecated or removed by Kubernetes 1.34 (pluto's table, shared fixture).

pub(crate) fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub(crate) fn check_api_versions(
    objects: &[(String, Value)],
    table: &Value,
    target: (u64, u64),
) -> Vec<String> {
    let mut problems = Vec::new();
    for (dir, o) in objects {
        let api = o["apiVersion"].as_str().unwrap_or("");
        for entry in table["deprecated-versions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if entry["version"].as_str() != Some(api) || entry["kind"].as_str() != Some(kind(o)) {
                continue;
            }
            let replacement = entry["replacement-api"].as_str().unwrap_or("?");
            for (field, what) in [("removed-in", "removed"), ("deprecated-in", "deprecated")] {
                if let Some(v) = entry[field].as_str().and_then(parse_version)
                    && v <= target
                {
                    problems.push(format!(
                        "{dir}: {} uses {api}, {what} in v{}.{} (use {replacement})",
                        describe(o),
                        v.0,
                        v.1
                    ));
                    break;
                }
            }
        }
    }
    problems
}
