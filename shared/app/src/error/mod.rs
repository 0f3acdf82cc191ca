//! [`CoreError`]: what a use case reports, rolled up from each area's error, with the one question every trigger
//! adapter asks: can a retry help?
//!
//! The bottom layer: every area's error lives here, so that ports, use cases and adapters can all name them
//! without depending on each other.

mod api;
mod auth;
mod credential;
mod store;

pub use api::{ApiError, Service};
pub use auth::AuthError;
pub use credential::CredentialError;
pub use store::StoreError;

use crate::config::ConfigError;

/// The error of a licensewatch use case.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Configuration is wrong: fix it, do not retry.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Credentials could not be resolved.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// A Microsoft API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Local or cloud state could not be read or written.
    #[error("{message}")]
    Store {
        /// What failed.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// Input from a caller was wrong (names the field).
    #[error("bad input: {0}")]
    BadInput(String),
    /// Another run holds the tenant's job (a lease): the same work can be done once it ends.
    #[error("busy: {0}")]
    Busy(String),
}

impl CoreError {
    /// True when the same call may succeed later (schedule retry, SQS redelivery).
    pub fn is_retryable(&self) -> bool {
        match self {
            CoreError::Config(_) | CoreError::BadInput(_) => false,
            CoreError::Credentials(CredentialError::SecretsManager(_)) => true,
            CoreError::Credentials(_) => false,
            CoreError::Api(e) => e.is_retryable(),
            CoreError::Store { retryable, .. } => *retryable,
            CoreError::Busy(_) => true,
        }
    }

    /// True when the tenant has not consented to the app (or revoked it): no retry helps until its administrator
    /// consents again.
    pub fn is_consent_missing(&self) -> bool {
        match self {
            CoreError::Api(ApiError::Auth(e)) => e.is_consent_missing(),
            CoreError::Credentials(CredentialError::Auth(e)) => e.is_consent_missing(),
            _ => false,
        }
    }

    /// `Retryable` or `Permanent`, as reported to Lambda in the error type.
    pub fn kind(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        }
    }
}
