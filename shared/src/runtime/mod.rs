//! Everything a run needs, built once per process (CLI) or cold start (Lambda) from the environment and the policy
//! file: Microsoft clients, state store, clock and SKU catalog. Handlers borrow it; use cases get its ports.

mod build;
pub mod deadline;
pub mod telemetry;
pub mod tenants;

use std::path::Path;
use std::sync::Arc;

use crate::adapters::credentials::Microsoft;
use crate::adapters::partition::AuditPartition;
use crate::config::ArchiveLocation;
use crate::config::{ConfigError, ConfigProblem, Settings, StateLocation};
use crate::domain::catalog::Catalog;
use crate::domain::retry::RetryPolicy;
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::archive::AuditArchive;
use crate::ports::clock::{Clock, FixedClock, SystemClock};
use crate::ports::queue::MessageQueue;
use crate::ports::store::{AuditState, Backend};
use crate::usecases::check_licenses::{CheckDeps, TenantRun};

/// The long-lived parts of a run.
pub struct Runtime {
    /// Environment configuration.
    pub settings: Settings,
    /// Policy file.
    pub policy: Policy,
    /// Graph and Management API clients.
    pub microsoft: Microsoft,
    /// State store and remediation queue: SQLite locally; DynamoDB, S3 and SQS on AWS.
    pub store: Arc<dyn Backend>,
    /// The audit archive: a directory locally, S3 on AWS (another tenant than the deployment's own: its partition).
    pub archive: Arc<dyn AuditArchive>,
    /// audit-fetch's book-keeping in the state store: the tenant's own partition of it.
    pub audit_state: Arc<dyn AuditState>,
    /// Where a scheduled run fans tenants out to (AWS, many tenants).
    pub tenant_queue: Option<Arc<dyn MessageQueue>>,
    /// Where admitted change notifications wait (AWS); locally the endpoint's own in-process queue.
    pub change_queue: Option<Arc<dyn MessageQueue>>,
    /// Time (`LICENSEWATCH_NOW` fixes it).
    pub clock: Arc<dyn Clock>,
    /// SKU names.
    pub catalog: Arc<Catalog>,
    /// The tenant's time zone for dates shown to people (`[[tenants]]` / `[tenant]` `time_zone`).
    pub time_zone: crate::time_zone::TimeZone,
    /// The AWS configuration, when state, archive or queues live there.
    pub aws: Option<aws_config::SdkConfig>,
    /// The deployment's own tenant (`LICENSEWATCH_TENANT_ID`): this one, or the one whose runtime built this one.
    pub home_tenant: String,
    /// How often the remediation worker reads a reprocessed user back (a small group is often processed within
    /// seconds) before leaving it `pending`: 5 times, 500 ms apart. Against a simulated clock that does not move
    /// in real time (the demo), waiting cannot help.
    pub verify_reads: (u32, std::time::Duration),
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A tenant's credential problem names the tenant (its secret, not the deployment's, may be at fault).
fn in_tenant_entry(e: crate::error::CredentialError, tenant_id: &str) -> CoreError {
    use crate::error::CredentialError;
    CoreError::Credentials(match e {
        CredentialError::Config(mut c) => {
            for p in &mut c.problems {
                p.problem = format!("{} (tenant {tenant_id})", p.problem);
            }
            CredentialError::Config(c)
        }
        CredentialError::SecretsManager(m) => {
            CredentialError::SecretsManager(format!("{m} (tenant {tenant_id})"))
        }
        other => other,
    })
}

/// Reads the environment and the policy file, reporting the problems of both together.
pub fn load_config() -> Result<(Settings, Policy), ConfigError> {
    let settings = Settings::from_env();
    let (path, explicit) = match &settings {
        Ok(s) => (s.policy_path.clone(), s.policy_path_explicit),
        Err(_) => match std::env::var(crate::config::vars::CONFIG) {
            Ok(p) if !p.trim().is_empty() => (p.into(), true),
            _ => ("./licensewatch.toml".into(), false),
        },
    };
    let inline = std::env::var(crate::config::vars::POLICY_TOML).ok();
    let policy = load_policy(inline.as_deref(), &path, explicit);
    match (settings, policy) {
        (Ok(s), Ok(p)) => Ok((s, p)),
        (s, p) => {
            let mut problems: Vec<ConfigProblem> = Vec::new();
            if let Err(e) = s {
                problems.extend(e.problems);
            }
            if let Err(e) = p {
                problems.extend(e.problems);
            }
            Err(ConfigError { problems })
        }
    }
}

/// The policy: the file named by `LICENSEWATCH_CONFIG` when set, else the inline text of
/// `LICENSEWATCH_POLICY_TOML` (how the Lambda template passes it), else `./licensewatch.toml` if present.
pub fn load_policy(
    inline: Option<&str>,
    path: &Path,
    explicit: bool,
) -> Result<Policy, ConfigError> {
    let checked = |text_or_file: Result<Policy, ConfigError>| -> Result<Policy, ConfigError> {
        let policy = text_or_file?;
        crate::usecases::suppressions::check_policy(&policy)?;
        Ok(policy)
    };
    match inline.filter(|t| !t.trim().is_empty()) {
        Some(text) if !explicit => checked(Policy::parse(text)).map_err(|mut e| {
            for p in &mut e.problems {
                p.name = format!("{} ({})", crate::config::vars::POLICY_TOML, p.name);
            }
            e
        }),
        _ => checked(Policy::load(path, explicit)),
    }
}

/// The AWS configuration, loaded once, when state, the archive, a queue or the credentials live in AWS.
async fn aws_config_for(settings: &Settings) -> Option<aws_config::SdkConfig> {
    let needs_aws = matches!(settings.state, StateLocation::DynamoDb(_))
        || matches!(settings.archive, ArchiveLocation::S3 { .. })
        || settings.tenant_queue_url.is_some()
        || (settings.notifications.as_ref()).is_some_and(|n| n.queue_url.is_some())
        || matches!(
            settings.credential,
            crate::config::CredentialSource::SecretsManager { .. }
        );
    match needs_aws {
        true => Some(crate::adapters::aws::sdk_config().await),
        false => None,
    }
}

impl Runtime {
    /// Builds the runtime from configuration already loaded.
    pub async fn build(
        settings: Settings,
        policy: Policy,
        catalog: Catalog,
    ) -> Result<Self, CoreError> {
        // One AWS configuration (and so one HTTP client) for Secrets Manager and the stores.
        let aws = aws_config_for(&settings).await;
        let microsoft = Microsoft::connect_with(
            &settings,
            RetryPolicy::default(),
            &policy.audit.publisher_id,
            aws.as_ref(),
        )
        .await?;
        Self::with_aws(settings, policy, microsoft, catalog, aws)
    }

    /// Builds the runtime around existing Microsoft clients (tests, the demo).
    pub async fn with_microsoft(
        settings: Settings,
        policy: Policy,
        microsoft: Microsoft,
        catalog: Catalog,
    ) -> Result<Self, CoreError> {
        let aws = aws_config_for(&settings).await;
        Self::with_aws(settings, policy, microsoft, catalog, aws)
    }

    /// Builds the runtime with an AWS configuration given by the caller (tests against a local emulator).
    pub fn with_aws(
        settings: Settings,
        policy: Policy,
        microsoft: Microsoft,
        catalog: Catalog,
        aws: Option<aws_config::SdkConfig>,
    ) -> Result<Self, CoreError> {
        let home = microsoft.tenant_id.clone();
        Self::assemble(settings, policy, microsoft, catalog, aws, &home)
    }

    /// The runtime of `microsoft`'s tenant in a deployment whose own tenant is `home`: another tenant than the
    /// deployment's own gets its own partition of the archive and of audit-fetch's book-keeping.
    fn assemble(
        settings: Settings,
        policy: Policy,
        microsoft: Microsoft,
        catalog: Catalog,
        aws: Option<aws_config::SdkConfig>,
        home: &str,
    ) -> Result<Self, CoreError> {
        // The tenant's own sections of its [[tenants]] entry, merged over the global ones.
        let policy = policy.for_tenant(&microsoft.tenant_id);
        let time_zone = policy.time_zone_for(&microsoft.tenant_id)?;
        // Checked at start: a suppression of an unknown kind is a configuration error naming its key.
        crate::usecases::suppressions::of_policy(&policy)?;
        let partition =
            (!microsoft.tenant_id.eq_ignore_ascii_case(home)).then_some(&microsoft.tenant_id);
        let archive = build::archive(&settings, aws.as_ref(), partition.map(String::as_str))?;
        let store = build::store(&settings, aws.as_ref(), &microsoft.tenant_id)?;
        let audit_state = Arc::new(match partition {
            None => AuditPartition::home(store.clone()),
            Some(tenant) => AuditPartition::tenant(store.clone(), tenant),
        });
        let tenant_queue = build::queue(
            crate::config::vars::TENANT_QUEUE_URL,
            settings.tenant_queue_url.as_deref(),
            aws.as_ref(),
        )?;
        let change_queue = build::queue(
            crate::config::vars::CHANGE_QUEUE_URL,
            (settings.notifications.as_ref()).and_then(|n| n.queue_url.as_deref()),
            aws.as_ref(),
        )?;
        let clock: Arc<dyn Clock> = match settings.now {
            Some(t) => Arc::new(FixedClock::at(t)),
            None => Arc::new(SystemClock),
        };
        Ok(Self {
            settings,
            policy,
            store,
            archive,
            audit_state,
            tenant_queue,
            change_queue,
            clock,
            catalog: Arc::new(catalog),
            time_zone,
            aws,
            home_tenant: home.to_string(),
            verify_reads: (5, std::time::Duration::from_millis(500)),
            microsoft,
        })
    }

    /// A runtime for another tenant of the policy's `[[tenants]]` (the fan-out): same app registration, state and
    /// archive, clients for that tenant. A tenant the policy does not list is refused.
    pub async fn for_tenant(&self, tenant_id: &str) -> Result<Self, CoreError> {
        let Some(entry) = self.tenant_entry(tenant_id) else {
            return Err(CoreError::BadInput(format!(
                "tenant '{tenant_id}' is not listed in the policy's [[tenants]]"
            )));
        };
        let mut settings = self.settings.clone();
        settings.tenant_id = Some(tenant_id.to_string());
        // A secret of the tenant's own names its app registration (or the entry does); the deployment's client id is
        // not assumed to be that app's.
        if !entry.secret_arn.is_empty() {
            settings.credential = crate::config::CredentialSource::SecretsManager {
                arn: entry.secret_arn.clone(),
            };
            settings.client_id = None;
        }
        if !entry.client_id.is_empty() {
            settings.client_id = Some(entry.client_id.clone());
        }
        let microsoft = Microsoft::connect_with(
            &settings,
            self.microsoft.retry.clone(),
            &self.policy.audit.publisher_id,
            self.aws.as_ref(),
        )
        .await
        .map_err(|e| in_tenant_entry(e, tenant_id))?;
        let mut rt = Self::assemble(
            settings,
            self.policy.for_tenant(tenant_id),
            microsoft,
            (*self.catalog).clone(),
            self.aws.clone(),
            &self.home_tenant,
        )?;
        rt.clock = self.clock.clone();
        Ok(rt)
    }

    fn tenant_entry(&self, tenant_id: &str) -> Option<&crate::policy::TenantEntry> {
        self.policy
            .tenants
            .iter()
            .find(|t| t.id.eq_ignore_ascii_case(tenant_id))
    }

    /// Loads a newer licensing CSV, or the embedded one.
    pub fn catalog(path: Option<&Path>) -> Result<Catalog, ConfigError> {
        match path {
            None => Ok(Catalog::embedded()),
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|t| Catalog::parse(&t))
                .map_err(|e| {
                    ConfigError::single("--licensing-csv", format!("'{}': {e}", p.display()))
                }),
        }
    }

    /// The ports license-check uses.
    pub fn check_deps(&self) -> CheckDeps<'_> {
        CheckDeps {
            graph: &self.microsoft.graph,
            store: self.store.as_ref(),
            queue: self.store.as_ref(),
            remediations: self.store.as_ref(),
            clock: self.clock.as_ref(),
            catalog: &self.catalog,
            crash: &crate::usecases::check_licenses::no_crash,
        }
    }

    /// The ports a statement reads.
    pub fn statement_deps(&self) -> crate::usecases::statement::StatementDeps<'_> {
        crate::usecases::statement::StatementDeps {
            store: self.store.as_ref(),
            catalog: &self.catalog,
        }
    }

    /// Where published statements go (`statements/` beside the archive).
    pub fn documents(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::ports::documents::Documents>, ConfigError> {
        build::documents(&self.settings, self.aws.as_ref())
    }

    /// The ports reclaim uses.
    pub fn reclaim_deps(&self) -> crate::usecases::reclaim::ReclaimDeps<'_> {
        crate::usecases::reclaim::ReclaimDeps {
            graph: &self.microsoft.graph,
            store: self.store.as_ref(),
            catalog: &self.catalog,
        }
    }

    /// The reclamation rules of the policy.
    pub fn reclaim_rules(&self) -> crate::domain::reclaim::ReclaimRules {
        crate::domain::reclaim::ReclaimRules {
            inactive_days: self.policy.reclaim.inactive_days,
            prices: crate::domain::reclaim::Prices {
                currency: self.policy.prices.currency.clone(),
                // Keys are matched without regard to case.
                monthly: (self.policy.prices.monthly.iter())
                    .map(|(k, v)| (k.trim().to_lowercase(), *v))
                    .collect(),
            },
        }
    }

    /// The configured notification channels (mail, webhooks; webhook secrets read from the environment), plus the
    /// console when `console` is given (local runs).
    pub fn notify_channels(
        &self,
        console: Option<Box<dyn crate::ports::channel::Channel>>,
    ) -> Result<Vec<Box<dyn crate::ports::channel::Channel>>, ConfigError> {
        let mut channels = crate::adapters::notify::build_channels(
            &self.policy,
            &self.microsoft.graph,
            &self.microsoft.http,
            &|k| std::env::var(k).ok(),
        )?;
        channels.extend(console);
        Ok(channels)
    }

    /// The service desks of `[[notify.tickets]]` (credentials read from the environment), for the worker's
    /// comments.
    pub fn ticket_desks(
        &self,
    ) -> Result<Vec<Box<dyn crate::ports::channel::Channel>>, ConfigError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let mut desks: Vec<Box<dyn crate::ports::channel::Channel>> = Vec::new();
        let mut problems = Vec::new();
        for (i, t) in self.policy.notify.tickets.iter().enumerate() {
            match crate::adapters::tickets::build_desk(t, i, &self.microsoft.http, &lookup) {
                Ok(desk) => desks.push(Box::new(desk)),
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(desks)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The ports grace-period-notify uses.
    pub fn notify_deps<'a>(
        &'a self,
        channels: &'a [Box<dyn crate::ports::channel::Channel>],
    ) -> crate::usecases::notify_grace_period::NotifyDeps<'a> {
        crate::usecases::notify_grace_period::NotifyDeps {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            channels,
            retry: RetryPolicy::default(),
            crash: &crate::usecases::notify_grace_period::no_crash,
        }
    }

    /// The secret Graph's notifications carry, when `LICENSEWATCH_NOTIFICATION_CLIENT_STATE` is set; one Graph
    /// would refuse is a configuration error naming the variable.
    pub fn client_state(
        &self,
    ) -> Result<Option<crate::domain::change_notifications::ClientState>, ConfigError> {
        let Some(n) = &self.settings.notifications else {
            return Ok(None);
        };
        crate::domain::change_notifications::ClientState::new(n.client_state.clone())
            .map(Some)
            .map_err(|e| ConfigError::single(crate::config::vars::NOTIFICATION_CLIENT_STATE, e))
    }

    /// Where Graph's change notifications go and the secret they carry: the URL is `url` when given (the renewal
    /// event on AWS), else `LICENSEWATCH_NOTIFICATION_URL`, else the one the tenant's subscription was created
    /// with. `None` when change notifications are not configured.
    pub async fn subscription_settings(
        &self,
        url: Option<&str>,
    ) -> Result<Option<crate::usecases::change_notifications::SubscriptionSettings>, CoreError>
    {
        let Some(client_state) = self.client_state()? else {
            return Ok(None);
        };
        let configured = (self.settings.notifications.as_ref()).and_then(|n| n.url.clone());
        let url = match url.map(str::to_string).or(configured) {
            Some(u) => u,
            None => match self.store.subscription(&self.microsoft.tenant_id).await? {
                Some(r) => r.notification_url,
                None => {
                    return Err(ConfigError::single(
                        crate::config::vars::NOTIFICATION_URL,
                        "is not set: a subscription needs the endpoint's public URL",
                    )
                    .into());
                }
            },
        };
        crate::config::parse_notification_url(&url)
            .map_err(|e| ConfigError::single(crate::config::vars::NOTIFICATION_URL, e))?;
        Ok(Some(
            crate::usecases::change_notifications::SubscriptionSettings { url, client_state },
        ))
    }

    /// The ports of the change-notification worker and the subscription renewal.
    pub fn change_deps<'a>(
        &'a self,
        channels: &'a [Box<dyn crate::ports::channel::Channel>],
    ) -> crate::usecases::change_notifications::ChangeDeps<'a> {
        crate::usecases::change_notifications::ChangeDeps {
            check: self.check_deps(),
            notify: self.notify_deps(channels),
            subscriptions: &self.microsoft.graph,
            records: self.store.as_ref(),
        }
    }

    /// Webhook verification from `[webhook]` and the environment (fails closed without a secret).
    pub fn webhook_auth(&self) -> Result<crate::usecases::webhook::WebhookAuth, ConfigError> {
        let mut auth = crate::usecases::webhook::WebhookAuth::from_policy(&self.policy, &|k| {
            std::env::var(k).ok()
        })?
        .with_signing_keys(std::sync::Arc::new(
            crate::adapters::signing_keys::HttpSigningKeys::new(self.microsoft.http.clone()),
        ));
        // Function URLs and API Gateway are HTTPS and say so in X-Forwarded-Proto; locally `serve` is plain HTTP.
        auth.https_only = self.aws.is_some();
        Ok(auth)
    }

    /// The endpoint's ports.
    pub fn webhook_deps<'a>(
        &'a self,
        auth: &'a crate::usecases::webhook::WebhookAuth,
    ) -> crate::usecases::webhook::WebhookDeps<'a> {
        crate::usecases::webhook::WebhookDeps {
            auth,
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            policy: &self.policy,
            tenant_id: &self.microsoft.tenant_id,
            graph: &self.microsoft.graph,
        }
    }

    /// doctor's ports.
    pub fn doctor_deps(&self) -> crate::usecases::doctor::DoctorDeps<'_> {
        let remediations = build::queue(
            crate::config::vars::QUEUE_URL,
            self.settings.queue_url.as_deref(),
            self.aws.as_ref(),
        )
        .ok()
        .flatten();
        let queues = [
            ("remediations", remediations),
            ("tenants", self.tenant_queue.clone()),
            ("changes", self.change_queue.clone()),
        ]
        .into_iter()
        .filter_map(|(name, q)| q.map(|q| (name, q)))
        .collect();
        crate::usecases::doctor::DoctorDeps {
            probe: &self.microsoft,
            store: self.store.as_ref(),
            archive: self.archive.as_ref(),
            clock: self.clock.as_ref(),
            queues,
            desks: self.ticket_desks().map_err(|e| e.to_string()),
        }
    }

    /// What doctor checks for `jobs` of this tenant, from the configuration.
    pub fn doctor_request(
        &self,
        jobs: &[crate::domain::doctor::Job],
        send_test_mail: Option<String>,
    ) -> crate::usecases::doctor::DoctorRequest {
        crate::usecases::doctor::DoctorRequest {
            tenant_id: self.microsoft.tenant_id.clone(),
            jobs: jobs.to_vec(),
            alerts: self.settings.notifications.is_some(),
            sender: Some(self.policy.notify.sender.clone()).filter(|s| !s.is_empty()),
            content_types: self.policy.audit.content_types.clone(),
            send_test_mail,
            cloud_licensing: self.policy.check.cloud_licensing,
        }
    }

    /// The worker's ports.
    pub fn worker_deps<'a>(
        &'a self,
        http: &'a reqwest::Client,
        callback_secret: Option<&'a crate::domain::signing::WebhookSecret>,
    ) -> crate::usecases::reprocess_user::WorkerDeps<'a> {
        crate::usecases::reprocess_user::WorkerDeps {
            graph: &self.microsoft.graph,
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            http,
            callback_secret,
            desks: &[],
            verify_attempts: self.verify_reads.0,
            verify_delay: self.verify_reads.1,
            verify_within_hours: self.policy.remediation.verify_within_hours,
            crash: &crate::usecases::reprocess_user::no_crash,
        }
    }

    /// audit-fetch's ports.
    pub fn audit_deps(&self) -> crate::usecases::fetch_audit::AuditDeps<'_> {
        self.audit_deps_with(self.archive.as_ref())
    }

    /// audit-fetch's ports with another archive (tests, benchmarks).
    pub fn audit_deps_with<'a>(
        &'a self,
        archive: &'a dyn AuditArchive,
    ) -> crate::usecases::fetch_audit::AuditDeps<'a> {
        crate::usecases::fetch_audit::AuditDeps {
            graph: &self.microsoft.graph,
            management: &self.microsoft.management,
            purview: &self.microsoft.graph,
            state: self.audit_state.as_ref(),
            store: self.store.as_ref(),
            archive,
            clock: self.clock.as_ref(),
            crash: &crate::usecases::fetch_audit::no_crash,
            progress: &crate::usecases::fetch_audit::no_progress,
            deadline: deadline::current(),
        }
    }

    /// Records a run of `job` for `tenant_id` (usually this runtime's) in the state store, which every tenant of
    /// the deployment shares; a missing consent alerts the deployment's own tenant. A failure to record is logged,
    /// never the run's.
    pub async fn record_run(
        &self,
        job: crate::domain::tenant_status::Job,
        tenant_id: &str,
        outcome: Result<(), &CoreError>,
    ) {
        let deps = crate::usecases::tenant_status::StatusDeps {
            store: self.store.as_ref(),
            home_tenant: &self.home_tenant,
        };
        let recorded = crate::usecases::tenant_status::record_run(
            &deps,
            tenant_id,
            job,
            outcome,
            self.clock.now(),
        )
        .await;
        if let Err(e) = recorded {
            tracing::warn!(tenant = tenant_id, job = %job, error = %e, "run status not recorded");
        }
    }

    /// The tenant settings for the configured tenant (`[tenant]`, or its `[[tenants]]` entry).
    pub fn tenant_run(&self) -> TenantRun {
        let id = self.microsoft.tenant_id.clone();
        let delayed = self
            .tenant_entry(&id)
            .map_or(self.policy.tenant.delayed_delicensing, |t| {
                t.delayed_delicensing
            });
        TenantRun {
            tenant_id: id,
            delayed_delicensing: delayed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_policy_is_used_unless_a_file_is_named() {
        let missing = Path::new("/nonexistent/licensewatch.toml");
        let p = load_policy(Some("[check]\nsku_low_seats = 9\n"), missing, false).expect("inline");
        assert_eq!(p.check.sku_low_seats, 9);
        assert_eq!(
            load_policy(Some("  "), missing, false).expect("blank = default"),
            Policy::default()
        );
        let err = load_policy(Some("[check]\nsku_low_seat = 9\n"), missing, false)
            .expect_err("unknown key");
        assert!(
            err.problems[0].name.starts_with("LICENSEWATCH_POLICY_TOML"),
            "{err}"
        );
        assert!(err.to_string().contains("sku_low_seat"), "{err}");
        // A file named explicitly wins (and must exist).
        let err = load_policy(Some("[check]\nsku_low_seats = 9\n"), missing, true)
            .expect_err("the named file is missing");
        assert_eq!(err.problems[0].name, "LICENSEWATCH_CONFIG");
    }
}
