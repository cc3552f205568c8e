//! The two names every git operation takes from outside: a repository (`owner/name`) and a
//! commit id. Both come from webhook payloads, forge answers and comments, and both end up in
//! paths, URLs and `git` argument lists, so each is checked once, here, and trusted after.

use std::fmt;
use std::str::FromStr;

use git2::Oid;
use serde::{Deserialize, Serialize};

/// A name that is not a repository name or not a full commit id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name {given:?} {why}")]
    Repo { given: String, why: &'static str },
    #[error("{given:?} is not a full 40-character hexadecimal commit SHA")]
    Sha { given: String },
    #[error("{given:?} is not a valid branch name")]
    Branch { given: String },
}

/// What error messages quote of a rejected input: enough to recognise it, never a whole payload.
fn quoted(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `FromStr` and `TryFrom<String>` (serde's way in) through the type's one `parse`.
macro_rules! parsed_from_text {
    ($t:ty) => {
        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }
    };
}

parsed_from_text!(RepoName);
parsed_from_text!(Sha);

/// `owner/name` with GitHub's character set: ASCII letters, digits, `-`, `_` and `.`, neither
/// part empty, `.` or `..`, nor starting with `-`. It can therefore be joined to a path (no
/// climbing out of the mirror root), put in a URL template (no leaving the host or path) and
/// passed to `git` (never read as an option).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName {
    full: String,
    slash: usize,
}

impl RepoName {
    /// GitHub's own bound on each part.
    const MAX_PART: usize = 100;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = |why| NameError::Repo {
            given: quoted(s),
            why,
        };
        let (owner, name) = s.split_once('/').ok_or_else(|| bad("is not owner/name"))?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.starts_with('-')
                && p.len() <= Self::MAX_PART
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        };
        if !part_ok(owner) || !part_ok(name) {
            return Err(bad("has characters or a shape GitHub does not allow"));
        }
        Ok(RepoName {
            full: s.to_string(),
            slash: owner.len(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.full[..self.slash]
    }

    pub fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl From<RepoName> for String {
    fn from(r: RepoName) -> String {
        r.full
    }
}

/// Reads as the `owner/name` string wherever one is expected (forge calls, records, logs).
impl std::ops::Deref for RepoName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.full
    }
}

impl AsRef<str> for RepoName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

/// A full commit id: exactly 40 hexadecimal digits, kept in lower case. A branch name, an
/// abbreviated id or a revision expression (`HEAD~1`) is refused, so a payload can never make
/// git resolve something other than the commit it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha(Oid);

impl Sha {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NameError::Sha { given: quoted(s) });
        }
        Oid::from_str(s)
            .map(Sha)
            .map_err(|_| NameError::Sha { given: quoted(s) })
    }

    pub fn oid(self) -> Oid {
        self.0
    }

    /// A commit git produced itself (already an object id, nothing to check).
    pub fn from_oid(oid: Oid) -> Self {
        Sha(oid)
    }

    /// The first twelve digits, for logs and replies.
    pub fn short(self) -> String {
        self.0.to_string()[..12].to_string()
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<Sha> for String {
    fn from(s: Sha) -> String {
        s.0.to_string()
    }
}

impl From<Sha> for Oid {
    fn from(s: Sha) -> Oid {
        s.0
    }
}

/// A branch name usable as `refs/heads/<name>` and inside a refspec or a `git` argument list:
/// git's own ref-name rules (no `..`, `:`, spaces, control characters, `@{`, trailing `.lock`,
/// ...), and no leading `-`, which `git` would read as an option.
pub fn check_branch(name: &str) -> Result<(), NameError> {
    if name.starts_with('-') || !git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
        return Err(NameError::Branch {
            given: quoted(name),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repository_names_are_owner_slash_name_in_githubs_alphabet() {
        let r = RepoName::parse("acme-co/gitops.infra_2").unwrap();
        assert_eq!((r.owner(), r.name()), ("acme-co", "gitops.infra_2"));
        assert_eq!(r.to_string(), "acme-co/gitops.infra_2");
        for hostile in [
            "../x",
            "x/..",
            "./x",
            "a/b/c",
            "-x/y",
            "x/-y",
            "--upload-pack=evil/x",
            "acme",
            "acme/",
            "/gitops",
            "acme/a b",
            "acme/x@evil.com",
            "acme/x:y",
            "acme/x\n",
            "acme/%2e%2e",
            "acme\\x/y",
            "acmé/x",
            "",
        ] {
            assert!(RepoName::parse(hostile).is_err(), "{hostile:?} accepted");
        }
        assert!(RepoName::parse(&format!("a/{}", "b".repeat(101))).is_err());
    }

    #[test]
    fn shas_are_exactly_forty_hex_digits() {
        let s = Sha::parse(&"AbC1".repeat(10)).unwrap();
        assert_eq!(s.to_string(), "abc1".repeat(10));
        assert_eq!(s.short(), "abc1abc1abc1");
        for hostile in [
            "main",
            "HEAD~1",
            "abc123",
            "-x",
            "--output=/tmp/x",
            &"g".repeat(40),
            &"a".repeat(39),
            &"a".repeat(41),
            &format!("{} ", "a".repeat(39)),
            &format!("{}..{}", "a".repeat(19), "b".repeat(19)),
        ] {
            assert!(Sha::parse(hostile).is_err(), "{hostile:?} accepted");
        }
    }

    #[test]
    fn branch_names_follow_gits_rules_and_are_never_options() {
        for ok in [
            "main",
            "feature/x-1",
            "capstan/promote/web/production",
            "v1.2",
        ] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for hostile in [
            "-x", "--force", "a..b", "a b", "", "x.lock", "a~1", "a^", "a:b", "../etc", "a//b",
            "/a", "a/", "a@{1}", "a\\b", "a\nb", ".hidden",
        ] {
            assert!(check_branch(hostile).is_err(), "{hostile:?} accepted");
        }
    }

    #[test]
    fn payloads_with_bad_names_do_not_deserialize() {
        let ok: (RepoName, Sha) =
            serde_json::from_str(&format!(r#"["a/b", "{}"]"#, "0".repeat(40))).unwrap();
        assert_eq!(ok.0.as_str(), "a/b");
        assert!(serde_json::from_str::<RepoName>(r#""../etc""#).is_err());
        assert!(serde_json::from_str::<Sha>(r#""HEAD""#).is_err());
        assert_eq!(
            serde_json::to_string(&ok.1).unwrap(),
            format!("\"{}\"", "0".repeat(40))
        );
    }
}
