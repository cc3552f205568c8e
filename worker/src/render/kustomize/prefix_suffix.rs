//! namePrefix / nameSuffix (the references to renamed objects are fixed at the end, see
//! `nameref`).

use serde_json::Value;

use super::KustomizeError;
use super::config::{TransformerConfig, paths_for};
use super::fieldpath;
use super::loader::Kust;
use super::resource::Res;

pub fn run(k: &Kust, ra: &mut [Res], cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    let prefix = k.str_field("namePrefix")?.unwrap_or_default();
    let suffix = k.str_field("nameSuffix")?.unwrap_or_default();
    if prefix.is_empty() && suffix.is_empty() {
        return Ok(());
    }
    for r in ra.iter_mut() {
        if skipped(r) {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", r.name());
        r.set_name(&name);
        affix_extra(r, &prefix, &cfg.name_prefix, true);
        affix_extra(r, &suffix, &cfg.name_suffix, false);
    }
    Ok(())
}

/// Other string fields that take the prefix or suffix (`configurations:` namePrefix /
/// nameSuffix specs beyond metadata/name).
pub(super) fn affix_extra(
    r: &mut Res,
    affix: &str,
    specs: &[super::config::FieldSpec],
    prefix: bool,
) {
    if affix.is_empty() {
        return;
    }
    let paths: Vec<(String, bool)> = paths_for(specs, r)
        .into_iter()
        .filter(|(p, _)| *p != "metadata/name")
        .map(|(p, c)| (p.to_string(), c))
        .collect();
    for (path, create) in paths {
        fieldpath::visit(&mut r.v, &path, create, &mut |v| {
            let cur = match v {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.is_empty() => String::new(),
                _ => return,
            };
            *v = Value::String(if prefix {
                format!("{affix}{cur}")
            } else {
                format!("{cur}{affix}")
            });
        });
    }
}

/// Kinds whose names kustomize never prefixes or suffixes.
pub(super) fn skipped(r: &Res) -> bool {
    matches!(r.kind(), "CustomResourceDefinition" | "Namespace")
        || (r.kind() == "APIService" && r.group() == "apiregistration.k8s.io")
}
