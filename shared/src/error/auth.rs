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

impl AuthError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AuthError::Unavailable(_) | AuthError::Malformed(_))
    }
}
