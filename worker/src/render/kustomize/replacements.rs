//! `replacements`: not implemented yet; reported as unsupported so the caller can fall back.

use super::KustomizeError;
use super::loader::{Kust, Loader};
use super::resource::Res;

pub fn run(_ld: &mut Loader, k: &Kust, _ra: &mut [Res]) -> Result<(), KustomizeError> {
    if k.field("replacements").is_some() {
        return Err(KustomizeError::unsupported("replacements", &k.file));
    }
    Ok(())
}
