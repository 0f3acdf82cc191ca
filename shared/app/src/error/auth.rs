//! [`AuthError`]: a token could not be obtained.

/// A failure to obtain a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the credentials (wrong secret, unknown app, expired certificate...).
    #[error("the token endpoint rejected the app's credentials ({status}: {error}: {description})")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    /// The token endpoint was unreachable, throttling, or failing, after retries.
    #[error("cannot get a token: {0}")]
    Unavailable(String),
    /// The token endpoint answered with something that is not a token response.
    #[error("the token endpoint sent an unreadable response: {0}")]
    Malformed(String),
    /// The certificate file is not usable.
    #[error("client certificate: {0}")]
    Certificate(String),
}

/// Entra's answers when the app has no service principal or no consent in the tenant (never consented, consent
/// revoked, app deleted there): only that tenant's administrator can fix it, by consenting again.
const CONSENT_CODES: [&str; 3] = ["AADSTS7000229", "AADSTS65001", "AADSTS700016"];

impl AuthError {
    /// True when the tenant has not consented to the app (or no longer does).
    pub fn is_consent_missing(&self) -> bool {
        match self {
            AuthError::Rejected {
                error, description, ..
            } => CONSENT_CODES
                .iter()
                .any(|c| description.contains(c) || error.contains(c)),
            _ => false,
        }
    }

    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AuthError::Unavailable(_) | AuthError::Malformed(_))
    }
}
