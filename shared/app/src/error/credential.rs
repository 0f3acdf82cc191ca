//! [`CredentialError`]: configuration could not be turned into credentials.

use crate::config::ConfigError;

/// Errors while resolving credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Configuration is incomplete or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Secrets Manager could not be read (retryable: throttling, network).
    #[error("cannot read the Secrets Manager secret: {0}")]
    SecretsManager(String),
    /// The certificate is unusable.
    #[error(transparent)]
    Auth(#[from] super::AuthError),
}
