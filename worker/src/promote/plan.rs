//! From a rule and three trees (the source at the promoted commit, the source before the change,
//! the target to edit) to the exact file edits and a line per promoted value.
//!
//! On a merge only the values the change touched are promoted (`before` is given): two merges
//! promoted out of order then never undo each other. A command promotes every listed value that
//! differs (`before` is `None`).

use std::collections::BTreeMap;

use git2::{Repository, Tree};
use serde_json::Value;

use super::edit::{EditError, YamlDoc, YamlPath};
use super::rules::{Copy, Matched};

/// Why a plan could not be made: the target no longer fits the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("{0}")]
    Conflict(String),
}

/// The edits of one promotion on one target tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Target path → new content (`None`: unchanged files are never listed).
    pub files: BTreeMap<String, Vec<u8>>,
    /// One line per promoted value, e.g. `images ghcr.io/x/podinfo: newTag 6.7.0 → 6.7.1`.
    pub changes: Vec<String>,
}

/// The summary of a plan with no change: also what a record says before anything was planned.
pub const NOTHING_TO_PROMOTE: &str = "nothing to promote";

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn summary(&self) -> String {
        if self.changes.is_empty() {
            NOTHING_TO_PROMOTE.into()
        } else {
            self.changes.join("; ")
        }
    }
}

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const IMAGE_FIELDS: [&str; 3] = ["newName", "newTag", "digest"];

pub(crate) fn read_blob(repo: &Repository, tree: &Tree<'_>, path: &str) -> Option<Vec<u8>> {
    let entry = tree.get_path(std::path::Path::new(path)).ok()?;
    let blob = entry.to_object(repo).ok()?.peel_to_blob().ok()?;
    Some(blob.content().to_vec())
}

fn kustomization(repo: &Repository, tree: &Tree<'_>, dir: &str) -> Option<(String, Vec<u8>)> {
    KUSTOMIZATION_NAMES.iter().find_map(|n| {
        let p = format!("{dir}/{n}");
        read_blob(repo, tree, &p).map(|b| (p, b))
    })
}

fn text(path: &str, bytes: &[u8]) -> Result<String, PlanError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| PlanError::Conflict(format!("{path} is not UTF-8 text")))
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(unset)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The trees a plan reads.
pub struct Trees<'r> {
    pub repo: &'r Repository,
    pub source: Tree<'r>,
    pub before: Option<Tree<'r>>,
    pub target: Tree<'r>,
}

/// Computes the edits `m` makes on `trees.target`.
pub fn plan(m: &Matched<'_>, trees: &Trees<'_>) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    // Edited target files so far (several items may touch one file).
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let repo = trees.repo;
    for item in &m.rule.copy {
        match item {
            Copy::Images(names) => {
                let (src_path, src) =
                    kustomization(repo, &trees.source, &m.from_dir).ok_or_else(|| {
                        PlanError::Conflict(format!("{} has no kustomization", m.from_dir))
                    })?;
                let (dst_path, dst) =
                    kustomization(repo, &trees.target, &m.to_dir).ok_or_else(|| {
                        PlanError::Conflict(format!("{} has no kustomization", m.to_dir))
                    })?;
                let src_text = text(&src_path, &src)?;
                let src_doc = YamlDoc::parse(&src_path, &src_text)?;
                let before_text = trees
                    .before
                    .as_ref()
                    .and_then(|t| kustomization(repo, t, &m.from_dir))
                    .and_then(|(p, b)| text(&p, &b).ok());
                let before_doc = match &before_text {
                    Some(t) => Some(YamlDoc::parse(&src_path, t)?),
                    None => None,
                };
                let images = src_text_images(&src_text, &src_path)?;
                let wanted: Vec<String> = match names {
                    Some(n) => n.clone(),
                    None => images.clone(),
                };
                for name in wanted {
                    if !images.contains(&name) {
                        return Err(PlanError::Conflict(format!(
                            "{src_path} lists no image {name}"
                        )));
                    }
                    for field in IMAGE_FIELDS {
                        let path = image_path(&name, field)?;
                        let new = src_doc.get(&path);
                        if let (Some(_), Some(b)) = (&trees.before, &before_doc)
                            && b.get(&path) == new
                        {
                            continue;
                        }
                        if trees.before.is_some() && before_doc.is_none() && new.is_none() {
                            continue;
                        }
                        let cur = current
                            .entry(dst_path.clone())
                            .or_insert(text(&dst_path, &dst)?);
                        let doc = YamlDoc::parse(&dst_path, cur)?;
                        let has_entry = YamlDoc::parse(&dst_path, cur)?
                            .get(&image_path(&name, "name")?)
                            .is_some();
                        if !has_entry {
                            return Err(PlanError::Conflict(format!(
                                "{dst_path} has no images entry for {name}; add one by hand once"
                            )));
                        }
                        let old = doc.get(&path);
                        if old == new {
                            continue;
                        }
                        let out = doc.set(&path, new.as_ref())?;
                        plan.changes.push(format!(
                            "images {name}: {field} {} → {}",
                            show(old.as_ref()),
                            show(new.as_ref())
                        ));
                        *cur = out;
                    }
                }
            }
            Copy::Field { file, path } => {
                let src_path = format!("{}/{file}", m.from_dir);
                let dst_path = format!("{}/{file}", m.to_dir);
                let src = read_blob(repo, &trees.source, &src_path)
                    .ok_or_else(|| PlanError::Conflict(format!("{src_path} does not exist")))?;
                let src_text = text(&src_path, &src)?;
                let new = YamlDoc::parse(&src_path, &src_text)?.get(path);
                if let Some(before) = &trees.before {
                    let old_src = read_blob(repo, before, &src_path)
                        .and_then(|b| String::from_utf8(b).ok())
                        .and_then(|t| YamlDoc::parse(&src_path, &t).ok()?.get(path));
                    if old_src == new {
                        continue;
                    }
                }
                let dst = match current.get(&dst_path) {
                    Some(t) => t.clone(),
                    None => {
                        let b = read_blob(repo, &trees.target, &dst_path).ok_or_else(|| {
                            PlanError::Conflict(format!("{dst_path} does not exist"))
                        })?;
                        text(&dst_path, &b)?
                    }
                };
                let doc = YamlDoc::parse(&dst_path, &dst)?;
                let old = doc.get(path);
                if old == new {
                    continue;
                }
                let out = doc.set(path, new.as_ref())?;
                plan.changes.push(format!(
                    "{file} {path}: {} → {}",
                    show(old.as_ref()),
                    show(new.as_ref())
                ));
                current.insert(dst_path, out);
            }
            Copy::File(file) => {
                let src_path = format!("{}/{file}", m.from_dir);
                let dst_path = format!("{}/{file}", m.to_dir);
                let Some(src) = read_blob(repo, &trees.source, &src_path) else {
                    return Err(PlanError::Conflict(format!(
                        "{src_path} does not exist (Capstan does not delete promoted files)"
                    )));
                };
                if let Some(before) = &trees.before
                    && read_blob(repo, before, &src_path).as_deref() == Some(&src[..])
                {
                    continue;
                }
                let old = read_blob(repo, &trees.target, &dst_path);
                if old.as_deref() == Some(&src[..]) {
                    continue;
                }
                plan.changes.push(format!(
                    "file {file}: {}",
                    if old.is_some() { "replaced" } else { "added" }
                ));
                plan.files.insert(dst_path, src);
            }
        }
    }
    for (path, t) in current {
        let original = read_blob(repo, &trees.target, &path);
        if original.as_deref() != Some(t.as_bytes()) {
            plan.files.insert(path, t.into_bytes());
        }
    }
    Ok(plan)
}

fn image_path(name: &str, field: &str) -> Result<YamlPath, PlanError> {
    if name.contains([']', '[']) {
        return Err(PlanError::Conflict(format!(
            "image name {name:?} cannot be addressed"
        )));
    }
    YamlPath::parse(&format!("images[name={name}].{field}")).map_err(PlanError::Conflict)
}

fn src_text_images(text: &str, file: &str) -> Result<Vec<String>, PlanError> {
    let v =
        crate::yaml::parse_single(text, file).map_err(|e| PlanError::Conflict(e.to_string()))?;
    Ok(v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect())
}
