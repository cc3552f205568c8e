//! The forge (GitHub) as Capstan needs it, behind a trait so tests use a fake that keeps the real
//! contract. This issue needs only what missed-event recovery reads; the PR pipeline extends it
//! (check runs, comments, permissions) and supplies `forge::github`.

use async_trait::async_trait;

/// An open pull request and the head it currently points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenPullRequest {
    pub repo: String,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
}

/// Errors talking to the forge, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Credentials missing, expired or refused.
    #[error("{repo}: the forge refused the credentials: {message}")]
    Unauthorized { repo: String, message: String },
    /// The repository does not exist or is not visible to the installation.
    #[error("{repo}: not found on the forge")]
    NotFound { repo: String },
    /// Anything else (network, 5xx, rate limit): worth retrying later.
    #[error("{repo}: forge request failed: {message}")]
    Other { repo: String, message: String },
}

#[async_trait]
pub trait Forge: Send + Sync + 'static {
    /// Repositories this installation can see (`owner/name`).
    async fn repositories(&self) -> Result<Vec<String>, ForgeError>;

    /// Open pull requests of `repo` with their head SHAs.
    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError>;
}
