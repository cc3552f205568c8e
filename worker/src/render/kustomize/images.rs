//! `images`: rewrites image references in every `containers` / `initContainers` list.

use serde_json::Value;

use super::KustomizeError;
use super::config::{FieldSpec, TransformerConfig};
use super::fieldpath;
use super::loader::Kust;
use super::resource::Res;

struct ImageRule {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

pub fn run(k: &Kust, ra: &mut [Res], cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    let Some(Value::Array(items)) = k.field("images") else {
        return Ok(());
    };
    let mut rules = Vec::new();
    for item in items {
        let get = |f: &str| -> Result<Option<String>, KustomizeError> {
            match item.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(KustomizeError::invalid(
                    &k.file,
                    format!("invalid Kustomization: images.{f} must be a string, got {other}"),
                )),
            }
        };
        rules.push(ImageRule {
            name: get("name")?.unwrap_or_default(),
            new_name: get("newName")?,
            new_tag: get("newTag")?,
            digest: get("digest")?,
        });
    }
    for r in ra.iter_mut() {
        walk(&mut r.v, &rules, false);
        apply_specs(r, &rules, &cfg.images);
    }
    Ok(())
}

/// Image fields named by field specs (custom kinds from `configurations:` or an
/// ImageTagTransformer's `fieldSpecs`), beyond the containers lists `walk` covers; kustomize
/// never creates an image field, whatever the spec's `create` says.
fn apply_specs(r: &mut Res, rules: &[ImageRule], specs: &[FieldSpec]) {
    let chosen: Vec<&FieldSpec> = specs
        .iter()
        .filter(|fs| fs.selects(r) && !covered_by_walk(&fs.path))
        .collect();
    for fs in chosen {
        fieldpath::visit(&mut r.v, &fs.path, false, &mut |v| {
            if let Value::String(img) = v
                && let Some(new) = rules.iter().find_map(|rule| apply(img, rule))
            {
                *img = new;
            }
        });
    }
}

/// Paths inside a `containers` / `initContainers` list, which `walk` already rewrote.
fn covered_by_walk(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').map(|s| s.trim_end_matches("[]")).collect();
    matches!(
        segs.as_slice(),
        [.., "containers" | "initContainers", "image"]
    )
}

fn walk(v: &mut Value, rules: &[ImageRule], in_containers: bool) {
    match v {
        Value::Object(m) => {
            if in_containers && let Some(Value::String(img)) = m.get_mut("image") {
                for rule in rules {
                    if let Some(new) = apply(img, rule) {
                        *img = new;
                        break;
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                let c = k == "containers" || k == "initContainers";
                if c && child.is_array() {
                    walk(child, rules, true);
                } else {
                    walk(child, rules, false);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, rules, in_containers);
            }
        }
        _ => {}
    }
}

/// Splits `name[:tag][@digest]`.
fn split(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((a, d)) => (a, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

fn apply(image: &str, rule: &ImageRule) -> Option<String> {
    let (name, tag, digest) = split(image);
    if name != rule.name {
        return None;
    }
    let name = rule.new_name.as_deref().unwrap_or(name);
    let (tag, digest) = match (&rule.new_tag, &rule.digest) {
        (Some(t), Some(d)) => (Some(t.as_str()), Some(d.as_str())),
        (Some(t), None) => (Some(t.as_str()), None),
        (None, Some(d)) => (None, Some(d.as_str())),
        (None, None) => (tag, digest),
    };
    let mut out = name.to_string();
    if let Some(t) = tag {
        out.push(':');
        out.push_str(t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Some(out)
}
