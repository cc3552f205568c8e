//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the exact body>`
//! (Gitea's is the same HMAC as bare hex), and GitLab's shared token (`X-Gitlab-Token`).
//! Verification is constant-time per secret, and any configured secret may match (rotation).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mac = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes()
        }
        // HMAC takes keys of any length; this arm exists only to avoid a panic path.
        Err(_) => return String::new(),
    };
    format!("sha256={}", hex::encode(mac))
}

/// Does `header` carry a valid signature of `body` under one of `secrets`?
pub fn verify(secrets: &[String], header: &str, body: &[u8]) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    verify_hex(secrets, hex_sig, body)
}

/// Gitea's and Forgejo's form (`X-Gitea-Signature`, `X-Forgejo-Signature`): the same HMAC as bare
/// hex, without GitHub's `sha256=`.
pub fn verify_hex(secrets: &[String], hex_sig: &str, body: &[u8]) -> bool {
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    // Every secret is tried, so the time taken does not say which one matched.
    let mut ok = false;
    for secret in secrets {
        if let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) {
            mac.update(body);
            ok |= mac.verify_slice(&expected).is_ok();
        }
    }
    ok
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// GitLab sends the webhook's secret token itself in `X-Gitlab-Token`: it matches when it equals
/// one of `secrets`. Every secret is compared, so the time does not say which one matched.
pub fn verify_token(secrets: &[String], token: &str) -> bool {
    let mut ok = false;
    for secret in secrets {
        ok |= !secret.is_empty() && constant_time_eq(secret, token);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_published_vector() {
        assert_eq!(sign(SECRET.as_bytes(), b"Hello, World!"), VECTOR);
        assert!(verify(&[SECRET.to_string()], VECTOR, b"Hello, World!"));
    }

    #[test]
    fn refuses_flipped_byte_wrong_secret_and_other_schemes() {
        let secrets = [SECRET.to_string()];
        assert!(!verify(&secrets, VECTOR, b"Hello, World?"));
        assert!(!verify(&["other".to_string()], VECTOR, b"Hello, World!"));
        assert!(!verify(&secrets, "sha1=0123", b"Hello, World!"));
        assert!(!verify(&secrets, "sha256=zz", b"Hello, World!"));
        assert!(!verify(&secrets, "", b"Hello, World!"));
        assert!(!verify(&[], VECTOR, b"Hello, World!"));
    }

    #[test]
    fn the_bare_hex_form_is_the_same_hmac_without_the_scheme() {
        let secrets = [SECRET.to_string()];
        let bare = VECTOR.trim_start_matches("sha256=");
        assert!(verify_hex(&secrets, bare, b"Hello, World!"));
        assert!(!verify_hex(&secrets, VECTOR, b"Hello, World!"));
        assert!(!verify_hex(&secrets, &bare[..62], b"Hello, World!"));
        assert!(!verify_hex(&secrets, bare, b"Hello, World?"));
        assert!(!verify_hex(&secrets, "", b"Hello, World!"));
    }

    #[test]
    fn gitlabs_token_must_equal_one_secret_exactly() {
        let secrets = ["old".to_string(), "new-secret".to_string()];
        assert!(verify_token(&secrets, "new-secret"));
        assert!(verify_token(&secrets, "old"));
        for bad in ["new-secre", "new-secret ", "NEW-SECRET", "", "old\0"] {
            assert!(!verify_token(&secrets, bad), "{bad:?}");
        }
        assert!(!verify_token(&[String::new()], ""));
    }

    #[test]
    fn any_of_several_secrets_verifies() {
        let secrets = ["new-secret".to_string(), SECRET.to_string()];
        assert!(verify(&secrets, VECTOR, b"Hello, World!"));
    }
}
