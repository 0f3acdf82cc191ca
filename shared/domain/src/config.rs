//! Configuration read once per cold start: the `LICENSEWATCH_*` environment variables (this module) and the
//! TOML policy file ([`crate::policy`]). Every missing or invalid value is reported together, by name.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use url::Url;

use crate::cloud::{Cloud, Endpoints};
use crate::secret::SecretString;

/// Where credentials for the app registration come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// `LICENSEWATCH_CLIENT_SECRET`.
    ClientSecret(SecretString),
    /// `LICENSEWATCH_CLIENT_CERT`: a PEM file holding the private key and the certificate.
    CertificateFile(PathBuf),
    /// `LICENSEWATCH_SECRET_ARN`: an AWS Secrets Manager secret whose JSON uses the same names as the variables.
    SecretsManager { arn: String },
}

/// Where small transactional state lives (`LICENSEWATCH_STATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// `sqlite:PATH`
    Sqlite(PathBuf),
    /// `dynamodb:TABLE`
    DynamoDb(String),
}

/// Where raw audit records are archived (`LICENSEWATCH_ARCHIVE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// `file:DIR`
    Directory(PathBuf),
    /// `s3://BUCKET/PREFIX`
    S3 { bucket: String, prefix: String },
}

/// The typed environment configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LICENSEWATCH_TENANT_ID` (may come from the Secrets Manager secret instead).
    pub tenant_id: Option<String>,
    /// `LICENSEWATCH_CLIENT_ID` (may come from the Secrets Manager secret instead).
    pub client_id: Option<String>,
    /// The credential, or where to fetch it.
    pub credential: CredentialSource,
    /// `LICENSEWATCH_CLOUD`.
    pub cloud: Cloud,
    /// Service roots: the cloud's, overridden by `LICENSEWATCH_GRAPH_URL`, `_LOGIN_URL`, `_MANAGE_URL`.
    pub endpoints: Endpoints,
    /// `LICENSEWATCH_STATE`.
    pub state: StateLocation,
    /// `LICENSEWATCH_ARCHIVE`.
    pub archive: ArchiveLocation,
    /// `LICENSEWATCH_NOW`: a fixed "now" for reproducible runs.
    pub now: Option<DateTime<Utc>>,
    /// `LICENSEWATCH_CONFIG`: the policy file path.
    pub policy_path: PathBuf,
    /// Whether `LICENSEWATCH_CONFIG` was set explicitly (then the file must exist).
    pub policy_path_explicit: bool,
    /// `LICENSEWATCH_QUEUE_URL`: the SQS remediation queue (AWS); unset = the state store's local queue.
    pub queue_url: Option<String>,
    /// `LICENSEWATCH_TENANT_QUEUE_URL`: the SQS queue a scheduled run fans tenants out to (AWS, many tenants).
    pub tenant_queue_url: Option<String>,
    /// Graph change notifications, when `LICENSEWATCH_NOTIFICATION_URL` is set.
    pub notifications: Option<NotificationSettings>,
}

/// Where Graph posts change notifications, the secret they carry, and where admitted batches wait.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `LICENSEWATCH_NOTIFICATION_URL`: the public endpoint (https; http only on loopback, for local runs). Needed
    /// to create subscriptions; on AWS the renewal event carries it instead.
    pub url: Option<String>,
    /// `LICENSEWATCH_NOTIFICATION_CLIENT_STATE`: the subscriptions' `clientState` (32 to 128 characters).
    pub client_state: SecretString,
    /// `LICENSEWATCH_CHANGE_QUEUE_URL`: the SQS queue admitted notifications wait in (AWS); unset = in process.
    pub queue_url: Option<String>,
}

/// One problem with one variable or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable (`LICENSEWATCH_CLOUD`) or policy key (`notify.admins`).
    pub name: String,
    /// What is wrong, without echoing secret values.
    pub problem: String,
}

/// All configuration problems found in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every problem, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// An error with a single problem.
    pub fn single(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                name: name.into(),
                problem: problem.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.name, p.problem)?;
        }
        Ok(())
    }
}

/// Collects problems so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigProblem>);

impl Problems {
    pub(crate) fn add(&mut self, name: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigProblem {
            name: name.into(),
            problem: problem.into(),
        });
    }
}

/// Environment variable names (public contract).
pub mod vars {
    pub const TENANT_ID: &str = "LICENSEWATCH_TENANT_ID";
    pub const CLIENT_ID: &str = "LICENSEWATCH_CLIENT_ID";
    pub const CLIENT_SECRET: &str = "LICENSEWATCH_CLIENT_SECRET";
    pub const CLIENT_CERT: &str = "LICENSEWATCH_CLIENT_CERT";
    pub const SECRET_ARN: &str = "LICENSEWATCH_SECRET_ARN";
    pub(crate) const CLOUD: &str = "LICENSEWATCH_CLOUD";
    pub(crate) const GRAPH_URL: &str = "LICENSEWATCH_GRAPH_URL";
    pub(crate) const LOGIN_URL: &str = "LICENSEWATCH_LOGIN_URL";
    pub(crate) const MANAGE_URL: &str = "LICENSEWATCH_MANAGE_URL";
    pub const STATE: &str = "LICENSEWATCH_STATE";
    pub const ARCHIVE: &str = "LICENSEWATCH_ARCHIVE";
    pub(crate) const NOW: &str = "LICENSEWATCH_NOW";
    pub const CONFIG: &str = "LICENSEWATCH_CONFIG";
    pub const QUEUE_URL: &str = "LICENSEWATCH_QUEUE_URL";
    pub const POLICY_TOML: &str = "LICENSEWATCH_POLICY_TOML";
    pub const TENANT_QUEUE_URL: &str = "LICENSEWATCH_TENANT_QUEUE_URL";
    pub const NOTIFICATION_URL: &str = "LICENSEWATCH_NOTIFICATION_URL";
    pub const NOTIFICATION_CLIENT_STATE: &str = "LICENSEWATCH_NOTIFICATION_CLIENT_STATE";
    pub const CHANGE_QUEUE_URL: &str = "LICENSEWATCH_CHANGE_QUEUE_URL";
}

impl Settings {
    /// Reads the process environment. Call once at start-up.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup`, so tests never touch the (global) process environment. Every
    /// problem is reported together, by variable name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup: &lookup,
            problems: Problems::default(),
        };
        r.refuse_empty();
        let (tenant_id, client_id, secret_arn) = r.identity();
        let credential = r.credential(secret_arn);
        let (cloud, endpoints) = r.endpoints();
        let (state, archive) = r.locations();
        let now = r.now();
        let (policy_path, policy_path_explicit) = match r.get(vars::CONFIG) {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from("./licensewatch.toml"), false),
        };
        let [queue_url, tenant_queue_url] = r.queues(&state);
        let notifications = r.notifications();
        r.state_needs_s3(&state, &archive);
        match credential {
            Some(credential) if r.problems.0.is_empty() => Ok(Settings {
                queue_url,
                tenant_queue_url,
                notifications,
                tenant_id,
                client_id,
                credential,
                cloud,
                endpoints,
                state,
                archive,
                now,
                policy_path,
                policy_path_explicit,
            }),
            _ => Err(ConfigError {
                problems: r.problems.0,
            }),
        }
    }
}

/// Reads the variables one concern at a time, collecting problems instead of stopping at the first.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Problems,
}

impl Reader<'_> {
    /// A variable's trimmed value; unset and empty are both `None` here (empty ones are refused first).
    fn get(&self, k: &str) -> Option<String> {
        (self.lookup)(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Set but empty is a mistake (a template or shell that lost a value), never "use the default": an empty
    /// LICENSEWATCH_GRAPH_URL must not mean Microsoft's public endpoint, nor an empty LICENSEWATCH_STATE a database
    /// in the working directory.
    fn refuse_empty(&mut self) {
        for var in [
            vars::TENANT_ID,
            vars::CLIENT_ID,
            vars::CLIENT_SECRET,
            vars::CLIENT_CERT,
            vars::SECRET_ARN,
            vars::CLOUD,
            vars::GRAPH_URL,
            vars::LOGIN_URL,
            vars::MANAGE_URL,
            vars::STATE,
            vars::ARCHIVE,
            vars::NOW,
            vars::CONFIG,
            vars::QUEUE_URL,
            vars::TENANT_QUEUE_URL,
            vars::NOTIFICATION_URL,
            vars::NOTIFICATION_CLIENT_STATE,
            vars::CHANGE_QUEUE_URL,
        ] {
            if (self.lookup)(var).is_some_and(|v| v.trim().is_empty()) {
                self.problems.add(
                    var,
                    "is set but empty: give it a value, or unset it to use the default",
                );
            }
        }
    }

    /// Tenant and client ids (both may come from the Secrets Manager secret instead), and the secret's ARN.
    fn identity(&mut self) -> (Option<String>, Option<String>, Option<String>) {
        let secret_arn = self.get(vars::SECRET_ARN);
        let tenant_id = self.get(vars::TENANT_ID);
        let client_id = self.get(vars::CLIENT_ID);
        if secret_arn.is_none() && tenant_id.is_none() {
            self.problems.add(
                vars::TENANT_ID,
                "is required (the directory/tenant id of the app registration)",
            );
        }
        if secret_arn.is_none() && client_id.is_none() {
            self.problems.add(
                vars::CLIENT_ID,
                "is required (the application/client id of the app registration)",
            );
        }
        if let Some(t) = tenant_id.as_deref().filter(|t| !is_valid_tenant(t)) {
            let problem = format!("'{t}' is not a tenant GUID or domain name");
            self.problems.add(vars::TENANT_ID, problem);
        }
        if let Some(c) = client_id
            .as_deref()
            .filter(|c| uuid::Uuid::parse_str(c).is_err())
        {
            let problem = format!("'{c}' is not a GUID");
            self.problems.add(vars::CLIENT_ID, problem);
        }
        (tenant_id, client_id, secret_arn)
    }

    /// Exactly one credential: a client secret, a certificate file, or (on AWS) the Secrets Manager secret.
    fn credential(&mut self, secret_arn: Option<String>) -> Option<CredentialSource> {
        let secret = (self.lookup)(vars::CLIENT_SECRET)
            .map(SecretString::new)
            .filter(|s| !s.is_empty());
        match (secret, self.get(vars::CLIENT_CERT), secret_arn) {
            (Some(_), Some(_), _) => {
                let problem = format!(
                    "set together with {}: choose one credential",
                    vars::CLIENT_CERT
                );
                self.problems.add(vars::CLIENT_SECRET, problem);
                None
            }
            (Some(s), None, _) => Some(CredentialSource::ClientSecret(s)),
            (None, Some(path), _) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    let problem = format!("file '{}' does not exist", path.display());
                    self.problems.add(vars::CLIENT_CERT, problem);
                }
                Some(CredentialSource::CertificateFile(path))
            }
            (None, None, Some(arn)) => {
                if !arn.starts_with("arn:") {
                    self.problems
                        .add(vars::SECRET_ARN, format!("'{arn}' is not an ARN"));
                }
                Some(CredentialSource::SecretsManager { arn })
            }
            (None, None, None) => {
                let problem = format!(
                    "no credential: set {} or {} (or {} on AWS)",
                    vars::CLIENT_SECRET,
                    vars::CLIENT_CERT,
                    vars::SECRET_ARN
                );
                self.problems.add(vars::CLIENT_SECRET, problem);
                None
            }
        }
    }

    /// The cloud's endpoints, each overridable (the simulated tenant, a proxy).
    fn endpoints(&mut self) -> (Cloud, Endpoints) {
        let cloud = match self.get(vars::CLOUD).map(|c| c.parse::<Cloud>()) {
            None => Cloud::Global,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                self.problems.add(vars::CLOUD, e);
                Cloud::Global
            }
        };
        let mut endpoints = cloud.endpoints();
        for (var, slot) in [
            (vars::GRAPH_URL, &mut endpoints.graph),
            (vars::LOGIN_URL, &mut endpoints.login),
            (vars::MANAGE_URL, &mut endpoints.manage),
        ] {
            if let Some(raw) = self.get(var) {
                match parse_base_url(&raw) {
                    Ok(u) => *slot = u,
                    Err(e) => self.problems.add(var, e),
                }
            }
        }
        (cloud, endpoints)
    }

    /// Where state and the archive live.
    fn locations(&mut self) -> (StateLocation, ArchiveLocation) {
        let default_state = || StateLocation::Sqlite(PathBuf::from("./licensewatch.db"));
        let default_archive = || ArchiveLocation::Directory(PathBuf::from("./audit-archive"));
        let state = match self.get(vars::STATE).map(|raw| parse_state(&raw)) {
            None => default_state(),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.problems.add(vars::STATE, e);
                default_state()
            }
        };
        let archive = match self.get(vars::ARCHIVE).map(|raw| parse_archive(&raw)) {
            None => default_archive(),
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                self.problems.add(vars::ARCHIVE, e);
                default_archive()
            }
        };
        (state, archive)
    }

    /// `LICENSEWATCH_NOW`: a fixed time for tests and the demo.
    fn now(&mut self) -> Option<DateTime<Utc>> {
        let raw = self.get(vars::NOW)?;
        match DateTime::parse_from_rfc3339(&raw) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.problems
                    .add(vars::NOW, format!("'{raw}' is not an RFC 3339 time ({e})"));
                None
            }
        }
    }

    /// The remediation and tenant queues (SQS); the remediation queue needs state in DynamoDB, where the worker
    /// that reads it records outcomes.
    fn queues(&mut self, state: &StateLocation) -> [Option<String>; 2] {
        let mut urls = [None, None];
        for (var, slot) in [vars::QUEUE_URL, vars::TENANT_QUEUE_URL]
            .into_iter()
            .zip(urls.iter_mut())
        {
            if let Some(raw) = self.get(var) {
                match parse_base_url(&raw) {
                    Ok(_) => *slot = Some(raw),
                    Err(e) => self.problems.add(var, e),
                }
            }
        }
        if urls[0].is_some() && matches!(state, StateLocation::Sqlite(_)) {
            let problem = format!(
                "an SQS queue needs {}=dynamodb:TABLE: the worker that reads it records outcomes there",
                vars::STATE
            );
            self.problems.add(vars::QUEUE_URL, problem);
        }
        urls
    }

    /// Change notifications need a client state; the public URL (which the renewal sends to Graph) and the queue
    /// are optional here: on AWS the URL reaches the renewal in its event, since a function cannot name its own
    /// URL. The client state's rules (length, characters) are checked when the runtime builds it, still naming
    /// this variable.
    fn notifications(&mut self) -> Option<NotificationSettings> {
        let url = self.get(vars::NOTIFICATION_URL);
        let client_state = (self.lookup)(vars::NOTIFICATION_CLIENT_STATE)
            .filter(|v| !v.trim().is_empty())
            .map(SecretString::new);
        let queue_url = self.get(vars::CHANGE_QUEUE_URL);
        if let Some(q) = &queue_url
            && let Err(e) = parse_base_url(q)
        {
            self.problems.add(vars::CHANGE_QUEUE_URL, e);
        }
        if let Some(u) = &url
            && let Err(e) = parse_notification_url(u)
        {
            self.problems.add(vars::NOTIFICATION_URL, e);
        }
        let Some(client_state) = client_state else {
            if url.is_some() || queue_url.is_some() {
                let problem = format!(
                    "is not set, but {} or {} is: Graph's notifications must carry a secret to be trusted",
                    vars::NOTIFICATION_URL,
                    vars::CHANGE_QUEUE_URL
                );
                self.problems.add(vars::NOTIFICATION_CLIENT_STATE, problem);
            }
            return None;
        };
        Some(NotificationSettings {
            url,
            client_state,
            queue_url,
        })
    }

    /// DynamoDB state keeps snapshots in S3: it needs an S3 archive. Checked last, so that problems are listed in
    /// the order the variables are documented.
    fn state_needs_s3(&mut self, state: &StateLocation, archive: &ArchiveLocation) {
        if matches!(state, StateLocation::DynamoDb(_))
            && !matches!(archive, ArchiveLocation::S3 { .. })
        {
            let problem = format!(
                "{}=dynamodb:TABLE keeps snapshots in S3: set {}=s3://BUCKET/PREFIX",
                vars::STATE,
                vars::ARCHIVE
            );
            self.problems.add(vars::ARCHIVE, problem);
        }
    }
}

/// A tenant is named by its GUID or one of its verified domains.
pub(crate) fn is_valid_tenant(t: &str) -> bool {
    uuid::Uuid::parse_str(t).is_ok()
        || (t.contains('.')
            && t.len() <= 253
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
}

/// Graph posts only to `https`; plain `http` is accepted on loopback, where the simulated tenant posts.
pub fn parse_notification_url(raw: &str) -> Result<Url, String> {
    let u = parse_base_url(raw)?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if u.scheme() != "https" && !loopback {
        return Err(format!(
            "'{raw}' must be an https URL: Microsoft Graph posts notifications only over https"
        ));
    }
    Ok(u)
}

fn parse_base_url(raw: &str) -> Result<Url, String> {
    let u = Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(format!("'{raw}' must be an http(s) URL"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("'{raw}' must not carry a query or fragment"));
    }
    Ok(u)
}

fn parse_state(raw: &str) -> Result<StateLocation, String> {
    if let Some(path) = raw.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err("sqlite: needs a path, e.g. sqlite:./licensewatch.db".into());
        }
        Ok(StateLocation::Sqlite(PathBuf::from(path)))
    } else if let Some(table) = raw.strip_prefix("dynamodb:") {
        let ok = (3..=255).contains(&table.len())
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !ok {
            return Err(format!("'{table}' is not a valid DynamoDB table name"));
        }
        Ok(StateLocation::DynamoDb(table.to_string()))
    } else {
        Err(format!("'{raw}' must be sqlite:PATH or dynamodb:TABLE"))
    }
}

fn parse_archive(raw: &str) -> Result<ArchiveLocation, String> {
    if let Some(dir) = raw.strip_prefix("file:") {
        if dir.is_empty() {
            return Err("file: needs a directory, e.g. file:./audit-archive".into());
        }
        Ok(ArchiveLocation::Directory(PathBuf::from(dir)))
    } else if let Some(rest) = raw.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
        if !ok {
            return Err(format!("'{bucket}' is not a valid S3 bucket name"));
        }
        Ok(ArchiveLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    } else {
        Err(format!("'{raw}' must be file:DIR or s3://BUCKET/PREFIX"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    const TENANT: &str = "11111111-2222-3333-4444-555555555555";
    const CLIENT: &str = "66666666-7777-8888-9999-000000000000";

    #[test]
    fn change_notifications_need_a_client_state_and_an_https_url() {
        let base = [
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, CLIENT),
            (vars::CLIENT_SECRET, "s3cr3t-value"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            settings(&all)
        };
        let names = |r: Result<Settings, ConfigError>| -> Vec<String> {
            r.unwrap_err()
                .problems
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert!(with(&[]).unwrap().notifications.is_none());
        assert_eq!(
            names(with(&[(
                vars::NOTIFICATION_URL,
                "https://lw.example.com/graph/notifications"
            )])),
            vec![vars::NOTIFICATION_CLIENT_STATE]
        );
        let state = "a-client-state-of-more-than-32-characters";
        let http = with(&[
            (vars::NOTIFICATION_URL, "http://lw.example.com/n"),
            (vars::NOTIFICATION_CLIENT_STATE, state),
        ]);
        let err = http.unwrap_err();
        assert_eq!(err.problems[0].name, vars::NOTIFICATION_URL);
        assert!(err.problems[0].problem.contains("https"), "{err}");
        assert!(!err.to_string().contains(state), "the secret is not echoed");
        let local = with(&[
            (
                vars::NOTIFICATION_URL,
                "http://127.0.0.1:8080/graph/notifications",
            ),
            (vars::NOTIFICATION_CLIENT_STATE, state),
        ])
        .unwrap();
        let n = local.notifications.expect("on");
        assert_eq!(
            n.url.as_deref(),
            Some("http://127.0.0.1:8080/graph/notifications")
        );
        assert!(!format!("{n:?}").contains(state), "Debug hides the secret");
        // Only the secret (AWS: the renewal event carries the URL) is enough.
        assert!(
            with(&[(vars::NOTIFICATION_CLIENT_STATE, state)])
                .unwrap()
                .notifications
                .is_some()
        );
        assert_eq!(
            names(with(&[(vars::NOTIFICATION_CLIENT_STATE, " ")])),
            vec![vars::NOTIFICATION_CLIENT_STATE],
            "empty is not unset"
        );
    }

    #[test]
    fn empty_environment_names_tenant_client_and_credential() {
        let err = settings(&[]).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![vars::TENANT_ID, vars::CLIENT_ID, vars::CLIENT_SECRET]
        );
        let text = err.to_string();
        assert!(text.contains("LICENSEWATCH_TENANT_ID") && text.contains("LICENSEWATCH_CLIENT_ID"));
    }

    #[test]
    fn every_bad_variable_is_reported_together() {
        let err = settings(&[
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, "not-a-guid"),
            (vars::CLIENT_SECRET, "s3cr3t-value"),
            (vars::CLOUD, "mars"),
            (vars::GRAPH_URL, "ftp://x"),
            (vars::STATE, "postgres:x"),
            (vars::ARCHIVE, "s3://UPPER/x"),
            (vars::NOW, "yesterday"),
        ])
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                vars::CLIENT_ID,
                vars::CLOUD,
                vars::GRAPH_URL,
                vars::STATE,
                vars::ARCHIVE,
                vars::NOW
            ]
        );
        assert!(err.to_string().contains("mars"));
        assert!(!err.to_string().contains("s3cr3t-value"));
    }

    #[test]
    fn empty_is_an_error_naming_the_variable_never_a_default() {
        let err = settings(&[
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, "66666666-7777-8888-9999-000000000000"),
            (vars::CLIENT_SECRET, "s3cr3t-value"),
            (vars::STATE, ""),
            (vars::ARCHIVE, "  "),
            (vars::GRAPH_URL, ""),
            (vars::LOGIN_URL, ""),
            (vars::MANAGE_URL, " "),
        ])
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                vars::GRAPH_URL,
                vars::LOGIN_URL,
                vars::MANAGE_URL,
                vars::STATE,
                vars::ARCHIVE
            ]
        );
        assert!(err.to_string().contains("set but empty"));
        // An empty secret is not a missing one that another credential could stand in for.
        let err = settings(&[
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, "66666666-7777-8888-9999-000000000000"),
            (vars::CLIENT_SECRET, ""),
            (
                vars::SECRET_ARN,
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
        ])
        .unwrap_err();
        assert_eq!(err.problems[0].name, vars::CLIENT_SECRET);
    }

    #[test]
    fn overrides_replace_cloud_endpoints() {
        let s = settings(&[
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, CLIENT),
            (vars::CLIENT_SECRET, "x"),
            (vars::CLOUD, "usgov"),
            (vars::GRAPH_URL, "http://127.0.0.1:9000"),
            (vars::STATE, "dynamodb:lw-state"),
            (vars::ARCHIVE, "s3://lw-archive/audit/"),
            (vars::NOW, "2026-11-21T09:00:00+01:00"),
        ])
        .expect("valid");
        assert_eq!(s.endpoints.graph.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(
            s.endpoints.login.as_str(),
            "https://login.microsoftonline.us/"
        );
        assert_eq!(s.state, StateLocation::DynamoDb("lw-state".into()));
        assert_eq!(
            s.archive,
            ArchiveLocation::S3 {
                bucket: "lw-archive".into(),
                prefix: "audit".into()
            }
        );
        assert_eq!(
            s.now.map(|n| n.to_rfc3339()),
            Some("2026-11-21T08:00:00+00:00".into())
        );
    }

    #[test]
    fn secret_arn_alone_is_enough_and_debug_hides_secrets() {
        let s = settings(&[(
            vars::SECRET_ARN,
            "arn:aws:secretsmanager:eu-west-1:123:secret:lw",
        )])
        .expect("ok");
        assert!(matches!(
            s.credential,
            CredentialSource::SecretsManager { .. }
        ));
        let s = settings(&[
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, CLIENT),
            (vars::CLIENT_SECRET, "do-not-print-me"),
        ])
        .expect("ok");
        assert!(!format!("{s:?}").contains("do-not-print-me"));
    }

    #[test]
    fn aws_locations_must_come_together() {
        let base = [
            (vars::TENANT_ID, TENANT),
            (vars::CLIENT_ID, CLIENT),
            (vars::CLIENT_SECRET, "x"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            settings(&all)
        };
        let err =
            with(&[(vars::QUEUE_URL, "https://sqs.eu-west-1.amazonaws.com/123/q")]).unwrap_err();
        assert_eq!(err.problems[0].name, vars::QUEUE_URL);
        assert!(err.problems[0].problem.contains("dynamodb:TABLE"));

        let err = with(&[(vars::STATE, "dynamodb:lw-state")]).unwrap_err();
        assert_eq!(err.problems[0].name, vars::ARCHIVE);
        assert!(err.problems[0].problem.contains("s3://"));

        let err = with(&[(vars::TENANT_QUEUE_URL, "not a url")]).unwrap_err();
        assert_eq!(err.problems[0].name, vars::TENANT_QUEUE_URL);

        let s = with(&[
            (vars::STATE, "dynamodb:lw-state"),
            (vars::ARCHIVE, "s3://lw-archive/audit"),
            (vars::QUEUE_URL, "https://sqs.eu-west-1.amazonaws.com/123/q"),
            (
                vars::TENANT_QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123/t",
            ),
        ])
        .expect("valid");
        assert_eq!(
            s.queue_url.as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123/q")
        );
        assert!(s.tenant_queue_url.is_some());
    }
}
