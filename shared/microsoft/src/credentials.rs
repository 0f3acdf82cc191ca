//! Turns [`Settings`] into ready Microsoft clients: resolves the credential (environment, PEM file or AWS Secrets
//! Manager, once per cold start) and builds the token provider, Graph and Management API clients on one HTTP client.

use std::sync::Arc;

use serde::Deserialize;

use crate::auth::{Audience, CertificateCredential, Credential, TokenProvider};
use crate::config::{ConfigError, CredentialSource, Settings, vars};
use crate::domain::retry::RetryPolicy;
use crate::graph::GraphClient;
use crate::http::{Caller, Service, build_http_client};
use crate::mgmt::ManagementClient;
use crate::secret::SecretString;

/// The Microsoft side of a run: one tenant, one app registration, its clients.
#[derive(Debug, Clone)]
pub struct Microsoft {
    /// Tenant id.
    pub tenant_id: String,
    /// How calls are retried (the other tenants of a deployment are called the same way).
    pub retry: RetryPolicy,
    /// Token provider (shared by both clients).
    pub tokens: Arc<TokenProvider>,
    /// Graph client.
    pub graph: GraphClient,
    /// Management Activity API client.
    pub management: ManagementClient,
    /// The one HTTP client of the process (connection pools, and the system's root certificates, which take
    /// milliseconds to load, read once): the channels and ticket callbacks use it too.
    pub http: reqwest::Client,
}

pub use crate::error::CredentialError;

/// The JSON stored in the Secrets Manager secret: the same names as the environment variables.
#[derive(Deserialize)]
struct SecretDocument {
    #[serde(rename = "LICENSEWATCH_TENANT_ID")]
    tenant_id: Option<String>,
    #[serde(rename = "LICENSEWATCH_CLIENT_ID")]
    client_id: Option<String>,
    #[serde(rename = "LICENSEWATCH_CLIENT_SECRET")]
    client_secret: Option<String>,
    /// PEM text (key + certificate), not a path.
    #[serde(rename = "LICENSEWATCH_CLIENT_CERT")]
    client_cert: Option<String>,
}

/// Reads a certificate credential; an unusable one is a configuration problem naming `LICENSEWATCH_CLIENT_CERT`
/// and where its PEM came from (`where_`: a file's path or the secret's ARN), so the admin knows what to fix.
fn certificate(pem: &str, where_: &str) -> Result<CertificateCredential, ConfigError> {
    CertificateCredential::from_pem(pem).map_err(|e| {
        let problem = match e {
            crate::error::AuthError::Certificate(p) => p,
            other => other.to_string(),
        };
        ConfigError::single(vars::CLIENT_CERT, format!("{where_}: {problem}"))
    })
}

impl Microsoft {
    /// Resolves the credential and builds the clients. `publisher_id` defaults to the tenant id.
    pub async fn connect(
        settings: &Settings,
        policy: RetryPolicy,
        publisher_id: &str,
    ) -> Result<Self, CredentialError> {
        Self::connect_with(settings, policy, publisher_id, None).await
    }

    /// [`Microsoft::connect`] with the AWS configuration for Secrets Manager given by the caller (a local
    /// emulator in tests); `None` loads the standard AWS chain.
    pub async fn connect_with(
        settings: &Settings,
        policy: RetryPolicy,
        publisher_id: &str,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Self, CredentialError> {
        let (tenant_id, client_id, credential) = match &settings.credential {
            CredentialSource::ClientSecret(s) => (
                settings.tenant_id.clone(),
                settings.client_id.clone(),
                Credential::Secret(s.clone()),
            ),
            CredentialSource::CertificateFile(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::single(
                        vars::CLIENT_CERT,
                        format!("cannot read '{}': {e}", path.display()),
                    )
                })?;
                let where_ = format!("the file '{}'", path.display());
                (
                    settings.tenant_id.clone(),
                    settings.client_id.clone(),
                    Credential::Certificate(Box::new(certificate(&pem, &where_)?)),
                )
            }
            CredentialSource::SecretsManager { arn } => {
                let doc = read_secret(arn, aws).await?;
                let credential = match (doc.client_secret, doc.client_cert) {
                    (Some(s), _) if !s.is_empty() => Credential::Secret(SecretString::new(s)),
                    (_, Some(pem)) if !pem.is_empty() => {
                        let where_ = format!("the Secrets Manager secret '{arn}'");
                        Credential::Certificate(Box::new(certificate(&pem, &where_)?))
                    }
                    _ => {
                        return Err(ConfigError::single(
                            vars::SECRET_ARN,
                            format!(
                                "the secret holds neither {} nor {}",
                                vars::CLIENT_SECRET,
                                vars::CLIENT_CERT
                            ),
                        )
                        .into());
                    }
                };
                (
                    settings.tenant_id.clone().or(doc.tenant_id),
                    settings.client_id.clone().or(doc.client_id),
                    credential,
                )
            }
        };
        let mut missing = Vec::new();
        if tenant_id.is_none() {
            missing.push(vars::TENANT_ID);
        }
        if client_id.is_none() {
            missing.push(vars::CLIENT_ID);
        }
        if !missing.is_empty() {
            return Err(ConfigError {
                problems: missing
                    .into_iter()
                    .map(|n| crate::config::ConfigProblem {
                        name: n.into(),
                        problem: "is required (in the environment or the Secrets Manager secret)"
                            .into(),
                    })
                    .collect(),
            }
            .into());
        }
        let tenant_id = tenant_id.unwrap_or_default();
        let client_id = client_id.unwrap_or_default();
        Ok(Self::build(
            settings,
            policy,
            &tenant_id,
            &client_id,
            credential,
            publisher_id,
        ))
    }

    /// Builds clients from an already-resolved credential (tests, the demo).
    pub fn build(
        settings: &Settings,
        policy: RetryPolicy,
        tenant_id: &str,
        client_id: &str,
        credential: Credential,
        publisher_id: &str,
    ) -> Self {
        let http = build_http_client(&policy);
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            settings.endpoints.login.clone(),
            settings.cloud,
            tenant_id,
            client_id,
            credential,
            policy.clone(),
        ));
        let caller = |service, audience| Caller {
            http: http.clone(),
            tokens: tokens.clone(),
            policy: policy.clone(),
            deadline: None,
            service,
            audience,
        };
        let publisher = if publisher_id.is_empty() {
            tenant_id
        } else {
            publisher_id
        };
        Self {
            tenant_id: tenant_id.to_string(),
            retry: policy.clone(),
            graph: GraphClient::new(
                caller(Service::Graph, Audience::Graph),
                &settings.endpoints.graph,
            ),
            management: ManagementClient::new(
                caller(Service::Management, Audience::Management),
                &settings.endpoints.manage,
                tenant_id,
                publisher,
            ),
            tokens,
            http,
        }
    }
}

async fn read_secret(
    arn: &str,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<SecretDocument, CredentialError> {
    let conf = match aws {
        Some(c) => c.clone(),
        None => licensewatch_aws::sdk_config().await,
    };
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            CredentialError::SecretsManager(
                aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            )
        })?;
    let text = out.secret_string().ok_or_else(|| {
        ConfigError::single(
            vars::SECRET_ARN,
            "the secret has no SecretString (binary secrets are not supported)",
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        // serde's message names the field and position, never the value.
        ConfigError::single(
            vars::SECRET_ARN,
            format!("the secret is not the expected JSON object ({e})"),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with_cert(path: &std::path::Path) -> Settings {
        let path = path.display().to_string();
        Settings::from_lookup(move |k| match k {
            "LICENSEWATCH_TENANT_ID" => Some("contoso.onmicrosoft.com".into()),
            "LICENSEWATCH_CLIENT_ID" => Some("0f0f0f0f-1111-2222-3333-444455556666".into()),
            "LICENSEWATCH_CLIENT_CERT" => Some(path.clone()),
            _ => None,
        })
        .expect("settings")
    }

    #[tokio::test]
    async fn a_certificate_file_without_a_certificate_names_the_variable_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let err = Microsoft::connect(&settings_with_cert(&path), RetryPolicy::quick(), "")
            .await
            .expect_err("no certificate in the file");
        let CredentialError::Config(config) = &err else {
            panic!("a configuration problem, not {err:?}");
        };
        assert_eq!(config.problems[0].name, "LICENSEWATCH_CLIENT_CERT", "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no CERTIFICATE block"), "{text}");
        assert!(
            !text.contains("AAAA"),
            "the key's text never appears: {text}"
        );
    }
}
