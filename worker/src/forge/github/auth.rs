//! Who Capstan is on GitHub: a personal token or a GitHub App (id + private key), read from the
//! settings once and checked at start-up, so a bad key stops the service with a message naming
//! where it came from rather than failing the first job.

use std::sync::{Arc, Once};

use aws_lc_rs::signature::RsaKeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use url::Url;

use super::NO_REPO;
use crate::forge::ForgeError;

/// Installs aws-lc-rs as rustls' process-wide provider. reqwest is built without a provider of its
/// own, and any crate that enables a second one makes rustls refuse to pick; installing it
/// explicitly once keeps every TLS client in the process working. Safe to call repeatedly.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is installed already, which is what we want.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A GitHub App's private key, parsed once.
pub struct AppKey {
    /// Checks the key once at start-up (with the error naming where it came from) and gives
    /// tests the public half.
    pair: RsaKeyPair,
    /// What octocrab signs the App JWT with.
    encoding: octocrab::EncodingKey,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{origin}: not a PEM private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
    )]
    NotPem { origin: String },
    #[error("{origin}: the PEM body is not base64: {message}")]
    Base64 { origin: String, message: String },
    #[error("{origin}: not a usable RSA key: {message}")]
    Rsa { origin: String, message: String },
    #[error("{origin}: the key cannot sign JWTs: {message}")]
    Jwt { origin: String, message: String },
    #[error("{origin}: cannot read the key: {source}")]
    Io {
        origin: String,
        source: std::io::Error,
    },
}

impl AppKey {
    /// Parses the PEM GitHub hands out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or a PKCS#8 one.
    /// `origin` names the key in errors (a file path, an env var).
    pub fn from_pem(pem: &str, origin: &str) -> Result<AppKey, KeyError> {
        let (label, body) = pem_body(pem).ok_or_else(|| KeyError::NotPem {
            origin: origin.into(),
        })?;
        let der = STANDARD.decode(body).map_err(|e| KeyError::Base64 {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let pair = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            _ => {
                return Err(KeyError::NotPem {
                    origin: origin.into(),
                });
            }
        }
        .map_err(|e| KeyError::Rsa {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let encoding =
            octocrab::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError::Jwt {
                origin: origin.into(),
                message: e.to_string(),
            })?;
        // The PEM is not kept, so this is the one chance to tell the scrubber about it.
        crate::scrub::register(pem);
        Ok(AppKey { pair, encoding })
    }

    pub fn from_file(path: &std::path::Path) -> Result<AppKey, KeyError> {
        let origin = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            origin: origin.clone(),
            source,
        })?;
        AppKey::from_pem(&pem, &origin)
    }

    /// The public half (DER `RSAPublicKey`), e.g. for a test server verifying our JWTs.
    pub fn public_key_der(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.pair.public_key().as_ref().to_vec()
    }

    /// The App JWT GitHub wants, signed by octocrab: RS256, `iss` = App id, issued 60 s in the
    /// past against clock drift, valid 9 minutes (GitHub's maximum is 10).
    pub fn jwt(&self, app_id: u64) -> Result<String, ForgeError> {
        octocrab::auth::create_jwt(octocrab::models::AppId(app_id), &self.encoding).map_err(|e| {
            ForgeError::Other {
                repo: NO_REPO.into(),
                message: format!("signing the App JWT failed: {e}"),
            }
        })
    }
}

fn pem_body(pem: &str) -> Option<(String, String)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let end_marker = format!("-----END {label}-----");
    let body_start = label_end + 5;
    let body_end = rest.find(&end_marker)?;
    let body: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some((label, body))
}

/// How Capstan authenticates.
#[derive(Clone, Debug)]
pub enum GitHubAuth {
    /// A personal (or fine-grained) token. Check runs are unavailable; use commit statuses.
    Token(String),
    /// A GitHub App: a JWT buys installation tokens, one per owner the App is installed on.
    App { app_id: u64, key: Arc<AppKey> },
}

/// Refusals of the GitHub settings (`CAPSTAN_GITHUB_*`), each naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "no GitHub credentials: set CAPSTAN_GITHUB_TOKEN, or CAPSTAN_GITHUB_APP_ID and CAPSTAN_GITHUB_APP_KEY_FILE"
    )]
    Missing,
    #[error(
        "both CAPSTAN_GITHUB_TOKEN and CAPSTAN_GITHUB_APP_ID are set; choose one way to authenticate"
    )]
    Ambiguous,
    #[error("CAPSTAN_GITHUB_APP_ID {0:?} is not a number")]
    AppId(String),
    #[error("CAPSTAN_GITHUB_APP_ID is set but CAPSTAN_GITHUB_APP_KEY_FILE is not")]
    MissingKeyFile,
    #[error("CAPSTAN_GITHUB_APP_KEY_FILE: {0}")]
    Key(#[from] KeyError),
    #[error("CAPSTAN_GITHUB_TOKEN is empty or contains whitespace")]
    Token,
    #[error("CAPSTAN_GITHUB_API_URL {url:?}: {message}")]
    ApiUrl { url: String, message: String },
}

impl GitHubAuth {
    /// Auth from the settings as given (env or flags): a token, or an App id plus key file.
    pub fn from_settings(
        token: Option<&str>,
        app_id: Option<&str>,
        key_file: Option<&std::path::Path>,
    ) -> Result<GitHubAuth, SettingsError> {
        match (token, app_id) {
            (Some(_), Some(_)) => Err(SettingsError::Ambiguous),
            (None, None) => Err(SettingsError::Missing),
            (Some(t), None) => {
                let t = t.trim();
                if t.is_empty() || t.chars().any(char::is_whitespace) {
                    return Err(SettingsError::Token);
                }
                Ok(GitHubAuth::Token(t.to_string()))
            }
            (None, Some(id)) => {
                let app_id = id
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| SettingsError::AppId(id.to_string()))?;
                let key = AppKey::from_file(key_file.ok_or(SettingsError::MissingKeyFile)?)?;
                Ok(GitHubAuth::App {
                    app_id,
                    key: Arc::new(key),
                })
            }
        }
    }
}

/// The API base: github.com's unless set (GitHub Enterprise Server: `https://<host>/api/v3`).
pub fn api_url_from_setting(url: Option<&str>) -> Result<Url, SettingsError> {
    let raw = url.unwrap_or("https://api.github.com");
    let parsed = Url::parse(raw).map_err(|e| SettingsError::ApiUrl {
        url: raw.into(),
        message: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(SettingsError::ApiUrl {
            url: raw.into(),
            message: "must be an http(s) URL with a host".into(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
        return Err(SettingsError::ApiUrl {
            url: raw.into(),
            message: "must not carry credentials or a query".into(),
        });
    }
    Ok(parsed)
}
