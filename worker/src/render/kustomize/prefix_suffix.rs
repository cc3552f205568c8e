//! namePrefix / nameSuffix (the references to renamed objects are fixed at the end, see
//! `nameref`).

use super::KustomizeError;
use super::loader::Kust;
use super::resource::Res;

pub fn run(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let prefix = k.str_field("namePrefix")?.unwrap_or_default();
    let suffix = k.str_field("nameSuffix")?.unwrap_or_default();
    if prefix.is_empty() && suffix.is_empty() {
        return Ok(());
    }
    for r in ra.iter_mut() {
        if matches!(r.kind(), "CustomResourceDefinition" | "Namespace")
            || (r.kind() == "APIService" && r.group() == "apiregistration.k8s.io")
        {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", r.name());
        r.set_name(&name);
    }
    Ok(())
}
