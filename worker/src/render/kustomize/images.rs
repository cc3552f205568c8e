//! `images`: rewrites image references the way kustomize's ImageTagTransformer does, one rule
//! after another (a rule sees what the rules before it wrote).

use serde_json::Value;

use super::KustomizeError;
use super::config::{FieldSpec, TransformerConfig};
use super::fieldpath;
use super::loader::Kust;
use super::resource::Res;

struct ImageRule {
    /// kustomize matches `name` as a regular expression anchored at the start, followed by an
    /// optional tag and an optional sha256 digest.
    pattern: regex::Regex,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
    tag_suffix: Option<String>,
}

/// kustomize's default `images` field specs. Each rule is applied once to every
/// `containers`/`initContainers` list anywhere in an object and then again to these paths, so a
/// `tagSuffix` lands twice on an image found both ways.
const FIELD_SPECS: [&str; 4] = [
    "spec/containers/image",
    "spec/initContainers/image",
    "spec/template/spec/containers/image",
    "spec/template/spec/initContainers/image",
];

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
        let name = get("name")?.unwrap_or_default();
        let pattern = regex::Regex::new(&format!(
            "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$"
        ))
        // kustomize itself crashes on an image name that is not a valid expression.
        .map_err(|_| KustomizeError::unsupported("images name that is not a regular expression", &k.file))?;
        rules.push(ImageRule {
            pattern,
            new_name: get("newName")?,
            new_tag: get("newTag")?,
            digest: get("digest")?,
            tag_suffix: get("tagSuffix")?,
        });
    }
    for rule in &rules {
        for r in ra.iter_mut() {
            if r.kind() == "CustomResourceDefinition" {
                continue;
            }
            walk(&mut r.v, rule, false);
            for path in FIELD_SPECS {
                rewrite_at(&mut r.v, path, rule);
            }
            apply_specs(r, rule, &cfg.images);
        }
    }
    Ok(())
}

/// Image fields named by extra field specs (custom kinds from `configurations:` or an
/// ImageTagTransformer's `fieldSpecs`). A spec equal to a default path is already in
/// [`FIELD_SPECS`] (kustomize merges configurations into its defaults without duplicates);
/// kustomize never creates an image field, whatever the spec's `create` says.
fn apply_specs(r: &mut Res, rule: &ImageRule, specs: &[FieldSpec]) {
    let chosen: Vec<&FieldSpec> = specs
        .iter()
        .filter(|fs| fs.selects(r) && !is_default_spec(&fs.path))
        .collect();
    for fs in chosen {
        rewrite_at(&mut r.v, &fs.path, rule);
    }
}

fn rewrite_at(v: &mut Value, path: &str, rule: &ImageRule) {
    fieldpath::visit(v, path, false, &mut |v| {
        if let Value::String(img) = v
            && let Some(new) = apply(img, rule)
        {
            *img = new;
        }
    });
}

fn is_default_spec(path: &str) -> bool {
    let plain = path.replace("[]", "");
    FIELD_SPECS.contains(&plain.as_str())
}

fn walk(v: &mut Value, rule: &ImageRule, in_containers: bool) {
    match v {
        Value::Object(m) => {
            if in_containers && let Some(Value::String(img)) = m.get_mut("image") {
                if let Some(new) = apply(img, rule) {
                    *img = new;
                }
            }
            for (k, child) in m.iter_mut() {
                let c = k == "containers" || k == "initContainers";
                if c && child.is_array() {
                    walk(child, rule, true);
                } else {
                    walk(child, rule, false);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, rule, in_containers);
            }
        }
        _ => {}
    }
}

/// Splits `name[:tag][@digest]` as kustomize does: the first `:` or `@` after the first `/`
/// (when that slash is not the first character) ends the name.
fn split(image: &str) -> (&str, &str, &str) {
    let from = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let search = &image[from..];
    let at = search.find('@').map(|i| i + from);
    let colon = search.find(':').map(|i| i + from);
    match (colon, at) {
        (None, None) => (image, "", ""),
        (Some(c), Some(d)) if c < d => (&image[..c], &image[c + 1..d], &image[d + 1..]),
        (_, Some(d)) => (&image[..d], "", &image[d + 1..]),
        (Some(c), None) => (&image[..c], &image[c + 1..], ""),
    }
}

fn apply(image: &str, rule: &ImageRule) -> Option<String> {
    if !rule.pattern.is_match(image) {
        return None;
    }
    let (name, tag, digest) = split(image);
    let name = rule.new_name.as_deref().unwrap_or(name);
    let mut tag = tag.to_string();
    let mut digest = digest;
    match (&rule.new_tag, &rule.digest, &rule.tag_suffix) {
        (Some(t), Some(d), _) => (tag, digest) = (t.clone(), d),
        (Some(t), None, _) => (tag, digest) = (t.clone(), ""),
        (None, Some(d), _) => (tag, digest) = (String::new(), d),
        (None, None, Some(s)) => {
            tag.push_str(s);
            digest = "";
        }
        (None, None, None) => {}
    }
    let mut out = name.to_string();
    if !tag.is_empty() {
        out.push(':');
        out.push_str(&tag);
    }
    if !digest.is_empty() {
        out.push('@');
        out.push_str(digest);
    }
    Some(out)
}
