//! OAuth2 client-credentials tokens for Graph and the Management Activity API, with a client secret or a
//! certificate (a signed client-assertion JWT), cached until shortly before they expire.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use url::Url;

use crate::cloud::Cloud;
use crate::domain::retry::{Retrier, RetryKind, RetryPolicy, parse_retry_after};
use crate::secret::SecretString;

/// Which API a token is for (each has its own scope and cache slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// `{graph}/.default`
    Graph,
    /// `{manage}/.default`
    Management,
}

pub use crate::error::AuthError;

/// A certificate credential: the private key and the SHA-256 thumbprint of the certificate.
pub struct CertificateCredential {
    key: EncodingKey,
    thumbprint_s256: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t#S256", &self.thumbprint_s256)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl CertificateCredential {
    /// Reads a PEM holding the RSA private key (PKCS#8 or PKCS#1) and the certificate, in any order.
    pub fn from_pem(pem: &str) -> Result<Self, AuthError> {
        let cert_b64 = pem_block(pem, "CERTIFICATE")
            .ok_or_else(|| AuthError::Certificate("no CERTIFICATE block in the PEM".into()))?;
        let der = STANDARD.decode(cert_b64.as_bytes()).map_err(|_| {
            AuthError::Certificate("the CERTIFICATE block is not valid base64".into())
        })?;
        let thumbprint_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(&der));
        let key_pem = ["PRIVATE KEY", "RSA PRIVATE KEY"]
            .iter()
            .find_map(|label| {
                pem_block(pem, label)
                    .map(|b| format!("-----BEGIN {label}-----\n{b}\n-----END {label}-----\n"))
            })
            .ok_or_else(|| AuthError::Certificate("no PRIVATE KEY block in the PEM".into()))?;
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
            AuthError::Certificate(format!("the private key is not a usable RSA key ({e})"))
        })?;
        Ok(Self {
            key,
            thumbprint_s256,
        })
    }

    /// The base64url SHA-256 thumbprint sent as the `x5t#S256` header.
    pub fn thumbprint_s256(&self) -> &str {
        &self.thumbprint_s256
    }

    /// A client-assertion JWT for `audience` (the token endpoint URL), valid for 10 minutes.
    pub fn assertion(&self, client_id: &str, audience: &str) -> Result<String, AuthError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            aud: &'a str,
            iss: &'a str,
            sub: &'a str,
            jti: String,
            nbf: u64,
            iat: u64,
            exp: u64,
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(self.thumbprint_s256.clone());
        let claims = Claims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now.saturating_sub(60),
            iat: now,
            exp: now + 600,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Certificate(format!("cannot sign the client assertion ({e})")))
    }
}

/// The base64 content of the first `-----BEGIN {label}-----` block, whitespace removed.
fn pem_block(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    Some(
        pem[start..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

/// The app's credential.
#[derive(Debug)]
pub enum Credential {
    /// A client secret.
    Secret(SecretString),
    /// A certificate.
    Certificate(Box<CertificateCredential>),
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

/// Gets and caches tokens for one tenant and app registration.
pub struct TokenProvider {
    http: reqwest::Client,
    login: Url,
    tenant_id: String,
    client_id: String,
    credential: Credential,
    scopes: HashMap<Audience, String>,
    policy: RetryPolicy,
    cache: Mutex<HashMap<Audience, CachedToken>>,
    requests: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("login", &self.login.as_str())
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    // v2 sends a number, v1 a string.
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenProvider {
    /// A provider for `tenant_id` at the `login` authority; scopes come from the cloud's canonical hosts so that an
    /// endpoint override (proxy, simulator) does not change what the token is for.
    pub fn new(
        http: reqwest::Client,
        login: Url,
        cloud: Cloud,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
        policy: RetryPolicy,
    ) -> Self {
        let e = cloud.endpoints();
        let scope = |u: &Url| format!("{}/.default", u.as_str().trim_end_matches('/'));
        let scopes = HashMap::from([
            (Audience::Graph, scope(&e.graph)),
            (Audience::Management, scope(&e.manage)),
        ]);
        Self {
            http,
            login,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            scopes,
            policy,
            cache: Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The v2 token endpoint of the tenant.
    pub(crate) fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// How many token requests were sent (tests check caching with it).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The app (client id) and tenant the tokens are for: Microsoft's quotas are counted per both.
    pub(crate) fn app_and_tenant(&self) -> (&str, &str) {
        (&self.client_id, &self.tenant_id)
    }

    /// A valid token for `audience`, from the cache when it has more than a few minutes left.
    pub async fn token(&self, audience: Audience) -> Result<SecretString, AuthError> {
        // Holding the lock while fetching makes concurrent callers share one token request.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&audience)
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(audience).await?;
        // Refresh 5 minutes early, or at half-life for short-lived tokens.
        let margin = Duration::from_secs(300).min(lifetime / 2);
        cache.insert(
            audience,
            CachedToken {
                token: token.clone(),
                refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            },
        );
        Ok(token)
    }

    /// Forgets the cached token (after a 401).
    pub(crate) async fn invalidate(&self, audience: Audience) {
        self.cache.lock().await.remove(&audience);
    }

    async fn fetch(&self, audience: Audience) -> Result<(SecretString, Duration), AuthError> {
        let url = self.token_url();
        let scope = self.scopes.get(&audience).cloned().unwrap_or_default();
        let mut retrier = Retrier::new(&self.policy, None);
        loop {
            let mut form: Vec<(&str, String)> = vec![
                ("client_id", self.client_id.clone()),
                ("scope", scope.clone()),
                ("grant_type", "client_credentials".into()),
            ];
            match &self.credential {
                Credential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
                Credential::Certificate(c) => {
                    form.push((
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ));
                    form.push(("client_assertion", c.assertion(&self.client_id, &url)?));
                }
            }
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let resp = self.http.post(&url).form(&form).send().await;
            let (kind, retry_after, problem) = match resp {
                Err(e) => (
                    RetryKind::Transient,
                    None,
                    format!("token endpoint unreachable: {e}"),
                ),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ra = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let body = r.bytes().await.unwrap_or_default();
                    let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
                    match (status, parsed) {
                        (
                            200,
                            Some(TokenResponse {
                                access_token: Some(t),
                                expires_in,
                                ..
                            }),
                        ) => {
                            let secs = match expires_in {
                                Some(serde_json::Value::Number(n)) => n.as_u64(),
                                Some(serde_json::Value::String(s)) => s.parse().ok(),
                                _ => None,
                            }
                            .unwrap_or(3599);
                            return Ok((SecretString::new(t), Duration::from_secs(secs)));
                        }
                        (200, _) => (
                            RetryKind::Transient,
                            None,
                            "200 without an access_token".to_string(),
                        ),
                        (429 | 503 | 504, _) => (
                            RetryKind::Throttled,
                            ra,
                            format!("token endpoint returned {status}"),
                        ),
                        (500..=599, _) => (
                            RetryKind::ServerError,
                            None,
                            format!("token endpoint returned {status}"),
                        ),
                        (_, p) => {
                            let (error, description) = p
                                .map(|p| {
                                    (
                                        p.error.unwrap_or_default(),
                                        p.error_description.unwrap_or_default(),
                                    )
                                })
                                .unwrap_or_default();
                            // AADSTS descriptions carry trace ids and timestamps; the first line is the useful part.
                            let description =
                                description.lines().next().unwrap_or_default().to_string();
                            return Err(AuthError::Rejected {
                                status,
                                error,
                                description,
                            });
                        }
                    }
                }
            };
            tracing::warn!(attempt = retrier.attempt(), problem, "token request failed");
            if !retrier.wait(kind, retry_after).await {
                return Err(
                    if kind == RetryKind::Transient && problem.starts_with("200") {
                        AuthError::Malformed(problem)
                    } else {
                        AuthError::Unavailable(problem)
                    },
                );
            }
        }
    }
}
