//! `capstan init`: adopt Capstan in a repository that already deploys with ArgoCD. It finds the
//! Applications (ApplicationSets and app-of-apps included), guesses the environments from folder
//! and values-file names, proposes image promotion rules between consecutive environments where
//! both overlays list `images:`, and writes a commented `.capstan.yaml` that the same parser and
//! rule validation the service uses accept. Nothing is guessed silently: what was found and what
//! was left out is printed with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, bail};
use capstan_worker::apps::{App, Snapshot, SourceStatus};
use capstan_worker::render::{BackendChoice, SourceKind};
use capstan_worker::repo_fs::{EntryKind, RepoFs, RepoPath};
use capstan_worker::settings::RepoSettings;

use super::apps::RepoArgs;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 written (or printed), 2 error (a .capstan.yaml exists \
    without --force, not a repository, a proposal the validator refuses).\n\nNothing is written \
    with --stdout. The file is read from the default branch once merged: commit it in a pull \
    request like any change."
)]
pub struct Args {
    /// Print the proposed .capstan.yaml instead of writing it.
    #[arg(long)]
    pub stdout: bool,
    /// Replace an existing .capstan.yaml (default: refuse and leave it as it is).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan init: {e:#}");
            ExitCode::from(2)
        }
    }
}

const SCHEMA_LINE: &str = "# yaml-language-server: $schema=https://raw.githubusercontent.com/capstan-gitops/capstan/main/docs/capstan-yaml.schema.json";

fn run_inner(args: &Args) -> anyhow::Result<()> {
    let local = args.repo.open()?;
    let target = local.root().join(".capstan.yaml");
    if target.exists() && !args.force && !args.stdout {
        bail!(
            "{} exists; pass --force to replace it, or --stdout to see the proposal",
            target.display()
        );
    }
    let mut cfg =
        local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let fs = local.fs(None)?;
    let renderer = args.repo.renderer(BackendChoice::Auto);
    let mut snap = Snapshot::build(fs.as_ref(), &cfg, &renderer);
    // Applications name the repository by its forge URL, which a fresh clone or a copy may not
    // have as a remote: the URL most git sources use is the repository's.
    let mut guessed_url = None;
    if local_apps(&snap.discovery.apps) == 0
        && let Some(url) = likely_repo_url(fs.as_ref(), &snap)
    {
        cfg.repo_urls.push(url.clone());
        snap = Snapshot::build(fs.as_ref(), &cfg, &renderer);
        guessed_url = Some(url);
    }
    // Written whenever the Applications agree on one, guessed or already known, so the file
    // says how this repository is named without relying on a git remote.
    let repo_url = guessed_url
        .clone()
        .or_else(|| likely_repo_url(fs.as_ref(), &snap));
    let apps = &snap.discovery.apps;
    // Without Applications in the tree (created by hand or from another repository), the
    // kustomization folders still say how environments are laid out.
    let from_folders = local_apps(apps) == 0;
    let sources = if from_folders {
        kustomization_sources(fs.as_ref(), &cfg.exclude)
    } else {
        app_sources(apps)
    };
    let envs = environments(&sources);
    let (rules, mut skipped) = promotion_rules(fs.as_ref(), &sources, &envs);
    skipped.extend(helm_notes(&sources));
    let text = settings_file(&Proposal {
        repo_url: repo_url.as_deref(),
        default_branch: &cfg.default_branch,
        envs: &envs,
        rules: &rules,
        skipped: &skipped,
    });
    // The proposal must be what the service accepts: the same parser and rule validation.
    let parsed = RepoSettings::parse(&text).context("the proposed .capstan.yaml is refused")?;
    capstan_worker::promote::rules::Rules::from_settings(&parsed)
        .map_err(|e| anyhow::anyhow!("the proposed promotion rules are refused: {e}"))?;

    summary(apps, guessed_url.as_deref(), &envs, &rules, &skipped, &snap);
    if from_folders && !sources.is_empty() {
        eprintln!(
            "  no Application renders from this repository: environments and rules come from its {} kustomization folder(s)",
            sources.len()
        );
    }
    if args.stdout {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(&target, &text).with_context(|| format!("writing {}", target.display()))?;
    eprintln!("\nwrote {}", target.display());
    eprintln!(
        "Capstan reads it from {} once it is committed there (through a pull request); until \
         then the commands below use that branch's settings.",
        one_line(&cfg.default_branch)
    );
    // Until the file is merged, the URL it names is not known to the commands: pass it.
    let url = guessed_url
        .as_deref()
        .map(|u| format!(" --repo-url {}", one_line(u)))
        .unwrap_or_default();
    eprintln!("next:");
    eprintln!("  capstan apps{url}     # every app and whether it renders here");
    eprintln!("  capstan check{url}    # render every app and run the policies");
    eprintln!(
        "  capstan diff --base {}{url}    # what a branch changes, per app and object",
        one_line(&cfg.default_branch)
    );
    Ok(())
}

fn local_apps(apps: &[App]) -> usize {
    apps.iter()
        .filter(|a| a.sources.iter().any(|s| s.status == SourceStatus::Local))
        .count()
}

/// The repoURL most git sources name (a `path`, no `chart`): of the Applications found, and of
/// the ApplicationSets discovery could not expand because their git generator names a URL it
/// does not know as this repository's.
fn likely_repo_url(fs: &dyn RepoFs, snap: &Snapshot) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in snap.discovery.apps.iter().flat_map(|a| &a.sources) {
        if s.path.is_some() && s.chart.is_none() {
            *counts.entry(s.repo_url.clone()).or_default() += 1;
        }
    }
    let files: BTreeSet<&RepoPath> = snap.discovery.unsupported.iter().map(|u| &u.file).collect();
    for file in files {
        let Ok(text) = fs.read_to_string(file) else {
            continue;
        };
        for doc in capstan_worker::yaml::parse_documents(&text, file.as_str()).unwrap_or_default() {
            if doc.get("kind").and_then(|k| k.as_str()) != Some("ApplicationSet") {
                continue;
            }
            let generators = doc.pointer("/spec/generators").cloned().unwrap_or_default();
            for g in generators.as_array().into_iter().flatten() {
                if let Some(url) = g.pointer("/git/repoURL").and_then(|u| u.as_str()) {
                    *counts.entry(url.to_string()).or_default() += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .max_by(|(a, n), (b, m)| n.cmp(m).then_with(|| b.cmp(a)))
        .map(|(url, _)| url)
}

/// Environment words in folder and values-file names, with their place in a promotion order.
const ENV_WORDS: &[(&str, u8)] = &[
    ("dev", 0),
    ("develop", 0),
    ("development", 0),
    ("sandbox", 0),
    ("test", 1),
    ("testing", 1),
    ("qa", 1),
    ("int", 1),
    ("integration", 1),
    ("stage", 2),
    ("staging", 2),
    ("stg", 2),
    ("uat", 2),
    ("preprod", 2),
    ("pre-prod", 2),
    ("prod", 3),
    ("production", 3),
    ("prd", 3),
    ("live", 3),
];

/// The promotion stage a folder name says: an environment word alone (`staging`) or joined to a
/// region or variant (`prod-eu`, `eu_prod`).
fn env_rank(word: &str) -> Option<u8> {
    let w = word.to_ascii_lowercase();
    let exact = |w: &str| ENV_WORDS.iter().find(|(e, _)| *e == w).map(|(_, r)| *r);
    // Only a leading word counts: `non-prod` is not production.
    exact(&w).or_else(|| {
        let first = w.split(['-', '_']).next()?;
        (first != w).then(|| exact(first))?
    })
}

/// The environment a values file's name says: `values-prod.yaml`, `values.staging.yaml`,
/// `staging.yaml`.
fn env_of_file(name: &str) -> Option<String> {
    let stem = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))?;
    let word = stem
        .strip_prefix("values-")
        .or_else(|| stem.strip_prefix("values."))
        .unwrap_or(stem);
    env_rank(word).map(|_| word.to_string())
}

/// One guessed environment: its name as the repository spells it, its rank in the promotion
/// order, the apps that show it, and its overlay folder when it is the last folder of their
/// sources (`overlays/staging`).
#[derive(Clone, Debug, PartialEq)]
struct Env {
    name: String,
    rank: u8,
    apps: BTreeSet<String>,
    overlay: Option<String>,
}

/// Where an environment word sits in a local source path (`apps/web/overlays/staging` → 3).
fn env_position(path: &str) -> Option<(usize, String)> {
    path.split('/')
        .enumerate()
        .filter(|(_, c)| env_rank(c).is_some())
        .last()
        .map(|(i, c)| (i, c.to_string()))
}

/// The folder inside an app that holds an environment: `overlays/staging` when the word closes
/// the path under a container folder, the word itself when it closes the path, else none.
fn overlay_of(path: &str, at: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    if at + 1 != parts.len() {
        return None;
    }
    let containers = [
        "overlays",
        "envs",
        "environments",
        "env",
        "stages",
        "variants",
    ];
    match at.checked_sub(1).map(|i| parts[i]) {
        Some(parent) if containers.contains(&parent) => Some(format!("{parent}/{}", parts[at])),
        _ => Some(parts[at].to_string()),
    }
}

/// What environments and rules are guessed from: a rendered source of an app (or, in a
/// repository without Applications, a kustomization folder), with its value files.
struct Source {
    app: String,
    path: String,
    kustomize: bool,
    value_files: Vec<String>,
}

/// Value files of a Helm source as repository paths (`$ref/x.yaml` is `x.yaml` of the root).
fn value_files(source: &capstan_worker::render::RenderSource) -> Vec<String> {
    let SourceKind::Helm(h) = &source.kind else {
        return Vec::new();
    };
    h.value_files
        .iter()
        .map(|f| match f.strip_prefix('$') {
            Some(rest) => rest
                .split_once('/')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default(),
            None if source.path.as_str().is_empty() => f.clone(),
            None => format!("{}/{f}", source.path),
        })
        .collect()
}

fn app_sources(apps: &[App]) -> Vec<Source> {
    apps.iter()
        .flat_map(|a| {
            a.local_sources().map(|src| Source {
                app: a.name.clone(),
                path: src.path.as_str().to_string(),
                kustomize: matches!(src.kind, SourceKind::Kustomize(_)),
                value_files: value_files(src),
            })
        })
        .collect()
}

/// Every kustomization folder of the tree (bounded walk), for a repository that deploys
/// without Application manifests in it: each folder stands for an app.
fn kustomization_sources(fs: &dyn RepoFs, exclude: &[RepoPath]) -> Vec<Source> {
    const MAX_DIRS: usize = 20_000;
    let mut out = Vec::new();
    let mut stack = vec![RepoPath::root()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > MAX_DIRS {
            break;
        }
        let Ok(entries) = fs.list_dir(&dir) else {
            continue;
        };
        let mut is_kustomization = false;
        for (name, kind) in entries {
            match kind {
                EntryKind::Dir if !name.starts_with('.') => {
                    if let Ok(p) = dir.join(&name)
                        && !exclude.iter().any(|x| p.starts_with(x))
                    {
                        stack.push(p);
                    }
                }
                EntryKind::File => {
                    is_kustomization |= KUSTOMIZATIONS.contains(&name.as_str());
                }
                EntryKind::Dir => {}
            }
        }
        if is_kustomization && !dir.as_str().is_empty() {
            out.push(Source {
                app: dir.as_str().to_string(),
                path: dir.as_str().to_string(),
                kustomize: true,
                value_files: Vec::new(),
            });
        }
    }
    // Bases and components other kustomizations include are parts, not deployed units.
    let included: BTreeSet<String> = out
        .iter()
        .flat_map(|src| included_dirs(fs, &src.path))
        .collect();
    out.retain(|src| !included.contains(&src.path));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The folders the kustomization in `dir` names under `resources`, `components` and `bases`,
/// as repository paths (entries that leave the repository or are files are skipped).
fn included_dirs(fs: &dyn RepoFs, dir: &str) -> Vec<String> {
    let Some(doc) = kustomization(fs, dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["resources", "components", "bases"] {
        for entry in doc
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(rel) = entry.as_str() else { continue };
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            let mut inside = true;
            for c in rel.split('/') {
                match c {
                    "" | "." => {}
                    ".." => inside &= parts.pop().is_some(),
                    c => parts.push(c),
                }
            }
            if inside {
                out.push(parts.join("/"));
            }
        }
    }
    out
}

const KUSTOMIZATIONS: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn environments(sources: &[Source]) -> Vec<Env> {
    let mut found: BTreeMap<String, Env> = BTreeMap::new();
    let mut overlays: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for src in sources {
        {
            let mut words = Vec::new();
            if let Some((at, word)) = env_position(&src.path) {
                if let Some(o) = overlay_of(&src.path, at) {
                    *overlays
                        .entry(word.clone())
                        .or_default()
                        .entry(o)
                        .or_default() += 1;
                }
                words.push(word);
            }
            for f in &src.value_files {
                let name = f.rsplit('/').next().unwrap_or_default();
                if let Some(w) = env_of_file(name) {
                    words.push(w);
                } else if let Some((_, w)) = env_position(f) {
                    words.push(w);
                }
            }
            for w in words {
                let rank = env_rank(&w).unwrap_or(u8::MAX);
                found
                    .entry(w.clone())
                    .or_insert_with(|| Env {
                        name: w.clone(),
                        rank,
                        apps: BTreeSet::new(),
                        overlay: None,
                    })
                    .apps
                    .insert(src.app.clone());
            }
        }
    }
    let mut envs: Vec<Env> = found
        .into_values()
        .map(|mut e| {
            // The overlay most of its sources end in.
            e.overlay = overlays.get(&e.name).and_then(|o| {
                o.iter()
                    .max_by_key(|(path, n)| (**n, std::cmp::Reverse(path.len())))
                    .map(|(p, _)| p.clone())
            });
            e
        })
        .collect();
    envs.sort_by(|a, b| (a.rank, &a.name).cmp(&(b.rank, &b.name)));
    envs
}

/// A proposed image promotion rule.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    name: String,
    app: String,
    from_env: String,
    to_env: String,
    from_path: String,
    to_path: String,
}

/// Kustomize sources by their path with the environment word replaced by `{env}`: the shape
/// shared by one app's overlays (`apps/web/overlays/{env}`), with the environments it has.
fn env_shapes(sources: &[Source]) -> BTreeMap<Vec<String>, BTreeMap<String, String>> {
    let mut shapes: BTreeMap<Vec<String>, BTreeMap<String, String>> = BTreeMap::new();
    for src in sources {
        if !src.kustomize {
            continue;
        }
        let path = src.path.as_str();
        let Some((at, word)) = env_position(path) else {
            continue;
        };
        let mut shape: Vec<String> = path.split('/').map(str::to_string).collect();
        shape[at] = "{env}".into();
        shapes
            .entry(shape)
            .or_default()
            .insert(word, path.to_string());
    }
    shapes
}

/// The kustomization file of `dir`, parsed; `None` when there is none or it does not parse.
fn kustomization(fs: &dyn RepoFs, dir: &str) -> Option<serde_json::Value> {
    KUSTOMIZATIONS
        .iter()
        .filter_map(|f| RepoPath::new(&format!("{dir}/{f}")).ok())
        .find_map(|p| fs.read_to_string(&p).ok())
        .and_then(|t| capstan_worker::yaml::parse_single(&t, dir).ok())
}

/// Whether the kustomization in `dir` lists `images:` (what `copy: [images]` promotes).
fn lists_images(fs: &dyn RepoFs, dir: &str) -> bool {
    kustomization(fs, dir).is_some_and(|v| {
        v.get("images")
            .and_then(|i| i.as_array())
            .is_some_and(|i| !i.is_empty())
    })
}

/// Image promotion rules between consecutive environments. Shapes that differ only in one
/// folder (the app's) become one rule with `{app}`; the rest one rule per app. A pair whose
/// overlays do not both list `images:` is left out with the reason.
fn promotion_rules(fs: &dyn RepoFs, sources: &[Source], envs: &[Env]) -> (Vec<Rule>, Vec<String>) {
    let shapes = env_shapes(sources);
    // Promotions go from one stage to the next. Where a stage holds several environments
    // (`staging-eu`, `staging-us`) which feeds which is a decision, not a guess: no rule.
    let mut skipped = Vec::new();
    let mut stages: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
    for e in envs {
        stages.entry(e.rank).or_default().push(e.name.as_str());
    }
    let mut order: Vec<&str> = Vec::new();
    for names in stages.values() {
        if names.len() > 1 {
            skipped.push(format!(
                "{}: several environments at one stage; write the rules between them and their \
                 neighbours by hand",
                names.join(", ")
            ));
            order.push("");
        } else {
            order.push(names[0]);
        }
    }
    // Group shapes that differ in exactly one position, which becomes `{app}`.
    let mut groups: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
    let mut grouped: BTreeSet<Vec<String>> = BTreeSet::new();
    let keys: Vec<&Vec<String>> = shapes.keys().collect();
    for k in &keys {
        for pos in 0..k.len() {
            if k[pos] == "{env}" {
                continue;
            }
            let mut general = (*k).clone();
            general[pos] = "{app}".into();
            let members: Vec<Vec<String>> = keys
                .iter()
                .filter(|o| o.len() == k.len() && (0..k.len()).all(|i| i == pos || o[i] == k[i]))
                .map(|o| (*o).clone())
                .collect();
            if members.len() >= 2 {
                groups.entry(general).or_insert(members);
            }
        }
    }
    // Prefer the grouping that covers the most shapes, then the deepest `{app}` position
    // (`apps/{app}/overlays/{env}` rather than `{app}/web/...`).
    let mut ordered: Vec<(Vec<String>, Vec<Vec<String>>)> = groups.into_iter().collect();
    ordered.sort_by_key(|(g, m)| {
        let pos = g.iter().position(|c| c == "{app}").unwrap_or(0);
        (std::cmp::Reverse(m.len()), std::cmp::Reverse(pos))
    });
    let mut units: Vec<(Vec<String>, Vec<Vec<String>>)> = Vec::new();
    for (g, members) in ordered {
        if members.iter().any(|m| grouped.contains(m)) {
            continue;
        }
        grouped.extend(members.iter().cloned());
        units.push((g, members));
    }
    for k in keys {
        if !grouped.contains(k) {
            units.push((k.clone(), vec![k.clone()]));
        }
    }

    let mut rules = Vec::new();
    for (shape, members) in units {
        let app_at = shape.iter().position(|c| c == "{app}");
        let env_at = shape.iter().position(|c| c == "{env}").unwrap_or(0);
        // A single app's rule is named after the folder before its environment folders.
        let app = match app_at {
            Some(_) => "*".to_string(),
            None => shape[..env_at]
                .iter()
                .rev()
                .find(|c| !["overlays", "envs", "environments", "env"].contains(&c.as_str()))
                .cloned()
                .unwrap_or_else(|| "app".into()),
        };
        for pair in order.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            if from.is_empty() || to.is_empty() {
                continue;
            }
            let both: Vec<&Vec<String>> = members
                .iter()
                .filter(|m| shapes[*m].contains_key(from) && shapes[*m].contains_key(to))
                .collect();
            if both.is_empty() {
                continue;
            }
            let fill = |env: &str| {
                shape
                    .iter()
                    .map(|c| if c == "{env}" { env } else { c.as_str() })
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let without_images: Vec<&String> = both
                .iter()
                .flat_map(|m| [&shapes[*m][from], &shapes[*m][to]])
                .filter(|p| !lists_images(fs, p))
                .collect();
            if !without_images.is_empty() {
                skipped.push(format!(
                    "{} → {}: no `images:` to promote in {}",
                    fill(from),
                    fill(to),
                    without_images
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            let base = if app == "*" {
                shape
                    .get(app_at.unwrap_or(0).saturating_sub(1))
                    .filter(|_| app_at.unwrap_or(0) > 0)
                    .cloned()
                    .unwrap_or_else(|| "apps".into())
            } else {
                app.clone()
            };
            rules.push(Rule {
                name: format!("{base}-images-{from}-to-{to}"),
                app: app.clone(),
                from_env: from.to_string(),
                to_env: to.to_string(),
                from_path: fill(from),
                to_path: fill(to),
            });
        }
    }
    // Rule names are unique: a second rule with a taken name gets a number.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &mut rules {
        let n = seen.entry(r.name.clone()).or_default();
        *n += 1;
        if *n > 1 {
            r.name = format!("{}-{n}", r.name);
        }
    }
    (rules, skipped)
}

/// Helm sources whose environments differ only by values files in one folder: a `field` rule
/// copies a value between two folders, so none is proposed; say so rather than stay silent.
fn helm_notes(sources: &[Source]) -> Vec<String> {
    let mut by_chart: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for src in sources {
        for f in &src.value_files {
            let (dir, name) = f.rsplit_once('/').unwrap_or(("", f.as_str()));
            if env_of_file(name).is_some() {
                by_chart
                    .entry(dir.to_string())
                    .or_default()
                    .insert(name.to_string());
            }
        }
    }
    by_chart
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(dir, files)| {
            format!(
                "{}: one values file per environment in one folder ({}); copy a value between \
                 environments with a `field` rule once each has its own folder",
                if dir.is_empty() { "." } else { dir.as_str() },
                files.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

struct Proposal<'a> {
    repo_url: Option<&'a str>,
    default_branch: &'a str,
    envs: &'a [Env],
    rules: &'a [Rule],
    skipped: &'a [String],
}

/// `s` on one line without control characters: repository paths may hold newlines or terminal
/// escapes, and a comment line or a terminal must not be opened by one.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// YAML's double-quoted scalar of `s` (JSON's string syntax is a subset of it).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn settings_file(p: &Proposal<'_>) -> String {
    let mut out = String::new();
    out.push_str(SCHEMA_LINE);
    out.push_str(
        "\n# Capstan's settings for this repository, proposed by `capstan init`: review them.\n\
         # Read from the default branch only, so a pull request cannot relax the rules that\n\
         # judge it. Every key: docs/capstan-yaml.md.\nversion: 1\n",
    );
    if let Some(url) = p.repo_url {
        out.push_str(&format!(
            "# How the Applications name this repository (their git sources' repoURL).\nrepoURL: {}\n",
            quoted(url)
        ));
    }
    out.push_str(&format!(
        "# Merges to this branch deploy; this file is read from it.\ndefaultBranch: {}\n",
        quoted(p.default_branch)
    ));
    if p.envs.is_empty() {
        out.push_str(
            "# No environment was recognised in folder or values-file names (dev, staging,\n\
             # prod, ...). List yours in promotion order to get per-environment reports:\n\
             # environments:\n#   - name: staging\n#   - name: production\n",
        );
    } else {
        out.push_str(
            "# In promotion order, guessed from folder and values-file names.\nenvironments:\n",
        );
        for e in p.envs {
            out.push_str(&format!(
                "  - name: {}   # {} app(s)\n",
                quoted(&e.name),
                e.apps.len()
            ));
            if let Some(o) = &e.overlay {
                out.push_str(&format!("    overlay: {}\n", quoted(o)));
            }
        }
    }
    out.push_str(
        "promotion:\n  # pull-request: every promotion is a pull request you review; direct commits it.\n  \
         mode: pull-request\n  # merge: promote when a merge changes the source overlay; command: only by\n  \
         # `/capstan promote <env>`.\n  trigger: merge\n",
    );
    for s in p.skipped {
        out.push_str(&format!("  # not proposed: {}\n", one_line(s)));
    }
    if p.rules.is_empty() {
        out.push_str("  rules: []\n");
    } else {
        out.push_str("  rules:\n");
        for r in p.rules {
            out.push_str(&format!(
                "    - name: {}\n      app: {}\n      from:\n        environment: {}\n        path: {}\n      \
                 to:\n        environment: {}\n        path: {}\n      copy:\n        - images\n",
                quoted(&r.name),
                quoted(&r.app),
                quoted(&r.from_env),
                quoted(&r.from_path),
                quoted(&r.to_env),
                quoted(&r.to_path),
            ));
        }
    }
    out.push_str(
        "policy:\n  # new: a pull request fails only on findings it brings; findings the default branch\n  \
         # already has are listed apart. `all` counts every finding of the apps it touches.\n  \
         gate: new\n  # What fails a check: deny findings (warn: warnings too).\n  failOn: deny\n",
    );
    out
}

fn summary(
    apps: &[App],
    guessed_url: Option<&str>,
    envs: &[Env],
    rules: &[Rule],
    skipped: &[String],
    snap: &Snapshot,
) {
    let generated = apps.iter().filter(|a| a.generated_by.is_some()).count();
    let children = apps.iter().filter(|a| a.parent.is_some()).count();
    eprintln!(
        "found {} Application(s): {generated} generated by ApplicationSets, {children} from app-of-apps; {} render from this repository",
        apps.len(),
        local_apps(apps)
    );
    if let Some(url) = guessed_url {
        eprintln!(
            "  this repository is {} (the repoURL the Applications' git sources use)",
            one_line(url)
        );
    }
    for e in &snap.discovery.errors {
        eprintln!("  could not read: {}", one_line(&e.to_string()));
    }
    if apps.is_empty() {
        eprintln!(
            "  no Application or ApplicationSet found; `capstan render DIR` renders a folder without one"
        );
    }
    if envs.is_empty() {
        eprintln!("environments: none recognised in folder or values-file names");
    } else {
        let list: Vec<String> = envs
            .iter()
            .map(|e| format!("{} ({} app(s))", one_line(&e.name), e.apps.len()))
            .collect();
        eprintln!("environments, in promotion order: {}", list.join(", "));
    }
    for r in rules {
        eprintln!(
            "promotion rule {}: images {} → {}",
            one_line(&r.name),
            one_line(&r.from_path),
            one_line(&r.to_path)
        );
    }
    for s in skipped {
        eprintln!("no rule for {}", one_line(s));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn environment_words_are_ordered_for_promotion() {
        let mut words = vec!["prod", "dev", "staging", "qa"];
        words.sort_by_key(|w| env_rank(w));
        assert_eq!(words, ["dev", "qa", "staging", "prod"]);
        assert_eq!(env_rank("Production"), Some(3));
        assert_eq!(env_rank("web"), None);
        assert_eq!(env_rank("prod-eu"), Some(3));
        assert_eq!(env_rank("staging_us"), Some(2));
        assert_eq!(env_rank("non-prod"), None);
    }

    #[test]
    fn values_file_names_name_environments() {
        assert_eq!(env_of_file("values-prod.yaml").as_deref(), Some("prod"));
        assert_eq!(
            env_of_file("values.staging.yml").as_deref(),
            Some("staging")
        );
        assert_eq!(env_of_file("dev.yaml").as_deref(), Some("dev"));
        assert_eq!(env_of_file("values.yaml"), None);
        assert_eq!(env_of_file("values-web.yaml"), None);
    }

    #[test]
    fn overlays_are_the_folder_that_closes_the_path() {
        assert_eq!(
            overlay_of("apps/web/overlays/staging", 3).as_deref(),
            Some("overlays/staging")
        );
        assert_eq!(overlay_of("apps/web/prod", 2).as_deref(), Some("prod"));
        assert_eq!(overlay_of("clusters/prod/web", 1), None);
    }

    #[test]
    fn the_proposal_quotes_what_it_writes() {
        let text = settings_file(&Proposal {
            repo_url: Some("https://example.com/a: b.git"),
            default_branch: "main",
            envs: &[],
            rules: &[Rule {
                name: "web-images-staging-to-prod".into(),
                app: "*".into(),
                from_env: "staging".into(),
                to_env: "prod".into(),
                from_path: "apps/{app}/staging".into(),
                to_path: "apps/{app}/prod".into(),
            }],
            skipped: &["x → y: no `images:`\nmalicious: key".into()],
        });
        // A newline in a skipped note must not open a YAML key.
        assert!(!text.contains("\nmalicious"), "{text}");
        assert!(
            text.contains("repoURL: \"https://example.com/a: b.git\""),
            "{text}"
        );
        let doc = capstan_worker::yaml::parse_single(&text, "t").unwrap();
        assert_eq!(doc["promotion"]["rules"][0]["app"], "*");
        assert_eq!(
            doc["promotion"]["rules"][0]["from"]["path"],
            "apps/{app}/staging"
        );
    }
}
