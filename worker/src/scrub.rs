//! One scrubber for every text that leaves Capstan: PR comments, check runs and statuses (at the
//! GitHub client), run records (at the store), and log lines (at the log writer).
//!
//! Upstream text (ArgoCD messages, tool stderr, GitHub API errors, a kustomization crafted to
//! echo a file into an error) is copied into reports on purpose, because it explains a failure.
//! Before it leaves, [`scrub`] replaces two kinds of secret with `[REDACTED]`:
//!
//! - known shapes: GitHub tokens (`ghp_`, `gho_`, `ghs_`, `ghu_`, `ghr_`, `github_pat_`), JWTs,
//!   `Authorization:` / `Bearer` / `token` credentials, URL userinfo (`https://user:pass@host`),
//!   private-key PEM blocks, AWS access key ids and secret keys, and long base64 values
//!   (≥ 40 characters) after `key:` or `key=` as in a Secret's `data:` or a `password=`;
//! - the exact values of the service's own secrets, registered at start-up with [`register`]
//!   (webhook secret, tokens, the App key, the database password), and their base64 forms.
//!
//! A 40- or 64-character hex string (a commit or image digest) is never a secret here.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Registered values shorter than this are ignored: replacing every `abc` would make reports
/// unreadable and a short secret is not protected by redaction anyway.
const MIN_REGISTERED: usize = 8;

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Default::default)
}

/// Registers one of the service's own secrets: from now on, any occurrence of it (or of its
/// standard base64 encoding) in scrubbed text is replaced. Surrounding whitespace is ignored.
pub fn register(secret: &str) {
    use base64::Engine as _;
    let secret = secret.trim();
    if secret.len() < MIN_REGISTERED {
        return;
    }
    let mut forms = vec![secret.to_string()];
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    forms.push(b64.trim_end_matches('=').to_string());
    // A multi-line secret (a PEM key) is also caught line by line, so a partial echo is too.
    forms.extend(
        secret
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
            .map(str::to_string),
    );
    let mut all = registry().write().unwrap_or_else(|p| p.into_inner());
    for f in forms {
        if !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so a value containing another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

struct Rule {
    re: Regex,
    /// Replacement in `Regex::replace_all` syntax; `${keep}` keeps a named prefix.
    with: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let rule = |re: &str, with: &'static str| Rule {
            // The patterns are constants, checked by the unit tests below.
            #[allow(clippy::unwrap_used)]
            re: Regex::new(re).unwrap(),
            with,
        };
        vec![
            // A whole private key: no `<` or `"` inside, so a block never swallows the markup or
            // JSON around it.
            rule(
                r#"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[^<"]*?-----END[A-Z0-9 ]*PRIVATE KEY-----"#,
                "[REDACTED PRIVATE KEY]",
            ),
            // What is left of one when the text was cut: the header and the base64 after it
            // (`\n` escapes included, as in JSON).
            rule(
                r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*",
                "[REDACTED PRIVATE KEY]",
            ),
            rule(r"\b(?:gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})", REDACTED),
            rule(
                r"\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*",
                REDACTED,
            ),
            rule(
                r"(?i)(?P<keep>authorization[\x22']?\s*[:=]\s*[\x22']?(?:(?:bearer|basic|token|digest)\s+)?)[^\s\x22',;]+",
                "${keep}[REDACTED]",
            ),
            rule(
                r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
                "${keep}[REDACTED]",
            ),
            rule(
                r"(?i)(?P<keep>\btoken\s+)[A-Za-z0-9._~+/=-]{20,}",
                "${keep}[REDACTED]",
            ),
            // Userinfo in any URL: `scheme://user:pass@` or a bare `scheme://token@`.
            rule(
                r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\x22'<>]+@",
                "${keep}[REDACTED]@",
            ),
            rule(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", REDACTED),
            rule(
                r"(?i)(?P<keep>aws_secret_access_key[\x22']?\s*[:=]\s*[\x22']?)[A-Za-z0-9/+=]{20,}",
                "${keep}[REDACTED]",
            ),
            // `password=...`, `secret: ...`, `"client_secret":"..."` and the like.
            rule(
                r#"(?i)(?P<keep>\b(?:password|passwd|client[_-]?secret|secret[_-]?key|api[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',;&]+"#,
                "${keep}[REDACTED]",
            ),
        ]
    })
}

/// Long base64 values after `key:` / `key=` (a Secret's `data:` entries, `password=`), unless
/// they are plain hex (commit ids, digests).
fn long_base64() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // A constant pattern, checked by the unit tests below.
        #[allow(clippy::unwrap_used)]
        Regex::new(r#"(?P<keep>[:=]\s*["']?)(?P<value>[A-Za-z0-9+/_-]{40,}={0,2})"#).unwrap()
    })
}

/// `text` with every secret shape and registered secret replaced.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let secrets = registry().read().unwrap_or_else(|p| p.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
    }
    for r in rules() {
        if let Cow::Owned(s) = r.re.replace_all(&out, r.with) {
            out = Cow::Owned(s);
        }
    }
    let b64 = long_base64().replace_all(&out, |c: &Captures<'_>| {
        let value = &c["value"];
        // Hex is a commit id or a digest; a leading `/` is a path.
        if value.bytes().all(|b| b.is_ascii_hexdigit()) || value.starts_with('/') {
            c[0].to_string()
        } else {
            format!("{}{REDACTED}", &c["keep"])
        }
    });
    if let Cow::Owned(s) = b64 {
        out = Cow::Owned(s);
    }
    out
}

/// [`scrub`] into an owned `String`.
pub fn scrub_string(text: &str) -> String {
    scrub(text).into_owned()
}

/// Scrubs every string (keys included) inside a JSON value, in place. Scrubbing the value rather
/// than its serialised text keeps the JSON valid.
pub fn scrub_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(c) = scrub(s) {
                *s = c;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_json),
        Value::Object(m) => {
            let entries = std::mem::take(m);
            for (k, mut val) in entries {
                scrub_json(&mut val);
                m.insert(scrub_string(&k), val);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn redacted(input: &str, secret: &str) {
        let out = scrub(input);
        assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
        assert!(out.contains("[REDACTED"), "{out:?}");
    }

    #[test]
    fn github_tokens() {
        for t in [
            "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "gho_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "ghu_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        ] {
            redacted(&format!("fetch failed with {t} (401)"), t);
        }
    }

    #[test]
    fn jwts_and_authorization_headers() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MjQyIn0.c2lnbmF0dXJlLWJ5dGVz";
        redacted(&format!("rejected {jwt}"), "c2lnbmF0dXJlLWJ5dGVz");
        redacted(
            "Authorization: Basic eC1hY2Nlc3M6c2VjcmV0",
            "eC1hY2Nlc3M6c2VjcmV0",
        );
        redacted("authorization=Bearer abc.def-ghi", "abc.def-ghi");
        redacted(r#"{"Authorization":"token s3cr3tvalue"}"#, "s3cr3tvalue");
        redacted("sent Bearer sk-live-0123456789", "sk-live-0123456789");
        redacted(
            "using token 0123456789abcdefABCDEF0123",
            "0123456789abcdefABCDEF0123",
        );
        // Prose about tokens stays readable.
        assert_eq!(scrub("the token expired"), "the token expired");
    }

    #[test]
    fn urls_with_credentials() {
        redacted(
            "fatal: https://user:hunter22@github.com/a/b.git",
            "hunter22",
        );
        redacted(
            "remote https://x-access-token:v1.abc@github.com/a/b",
            "v1.abc",
        );
        redacted("postgres://capstan:pgpass99@db:5432/capstan", "pgpass99");
        assert_eq!(
            scrub("see https://github.com/acme/gitops/pull/1"),
            "see https://github.com/acme/gitops/pull/1"
        );
    }

    #[test]
    fn pem_blocks_whole_or_cut() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAxyz\nabc\n-----END RSA PRIVATE KEY-----";
        let out = scrub_string(&format!("key: {pem}\nafter"));
        assert!(!out.contains("MIIEow"), "{out}");
        assert!(out.ends_with("after"), "{out}");
        redacted(
            "error near -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqh",
            "MIIEvQIBADANBgkqh",
        );
        // A public certificate is not a secret.
        // Inside markup or JSON, a cut key is redacted without eating what follows.
        let html = "<pre>-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN</pre><p>next</p>";
        assert_eq!(scrub(html), "<pre>[REDACTED PRIVATE KEY]</pre><p>next</p>");
        let json = r#"{"e":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN","f":1}"#;
        assert_eq!(scrub(json), r#"{"e":"[REDACTED PRIVATE KEY]","f":1}"#);
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(scrub(cert), cert);
    }

    #[test]
    fn aws_keys() {
        redacted("id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE");
        redacted(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        );
    }

    #[test]
    fn long_base64_in_secret_contexts() {
        let v = "c3VwZXItc2VjcmV0LXBhc3N3b3JkLXRoYXQtaXMtbG9uZw==";
        redacted(&format!("data:\n  password: {v}\n"), v);
        redacted(&format!("stringData: {{token: {v}}}"), v);
        redacted("password=hunter2", "hunter2");
        redacted(r#""client_secret": "abc123xyz""#, "abc123xyz");
    }

    #[test]
    fn hex_ids_and_ordinary_text_are_kept() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for text in [
            format!("head: {sha}"),
            format!("commit={sha}"),
            format!("image: nginx@sha256:{}", "ab".repeat(32)),
            "replicas: 3".to_string(),
            "error: accumulating resources: open /tmp/x: no such file".to_string(),
            "- name: LOG_LEVEL\n  value: info".to_string(),
        ] {
            assert_eq!(scrub(&text), text);
        }
    }

    #[test]
    fn registered_secrets_are_replaced_in_any_context() {
        register("canary-registered-3f9a");
        register("abcdefg"); // too short to register
        let out = scrub("echo canary-registered-3f9a and abcdefg");
        assert_eq!(out, "echo [REDACTED] and abcdefg");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode("canary-registered-3f9a");
        assert!(!scrub(&format!("x {b64} y")).contains(&b64[..20]));
    }

    #[test]
    fn json_stays_valid() {
        let mut v = serde_json::json!({
            "body": "Authorization: Bearer abcdefghijk",
            "list": ["ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", 3],
        });
        scrub_json(&mut v);
        let s = v.to_string();
        assert!(!s.contains("abcdefghijk") && !s.contains("ghp_AbCd"), "{s}");
        assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok());
    }
}
