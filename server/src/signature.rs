//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the exact body>`.
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
    fn any_of_several_secrets_verifies() {
        let secrets = ["new-secret".to_string(), SECRET.to_string()];
        assert!(verify(&secrets, VECTOR, b"Hello, World!"));
    }
}
