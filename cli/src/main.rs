//! `licensewatch`: runs the licensewatch functions locally (same handlers as on AWS) and the simulated tenant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use licensewatch_core::runtime::telemetry::{self, LogFormat};
use licensewatch_sim::Scenario;

mod audit;
mod changes;
mod check;
mod demo;
mod demo_desk;
mod demo_realtime;
mod doctor;
mod endpoint_state;
mod fleet;
mod init;
mod notify;
mod progress;
mod reclaim;
mod report;
mod search;
mod serve;
mod sim_runtime;
mod statement;

/// Watch Microsoft 365 licences: warn before mailboxes are cut off, explain every licence change, keep the audit
/// trail, and fix licence errors from your ticketing system.
#[derive(Debug, Parser)]
#[command(name = "licensewatch", version, about, long_about = None)]
struct Cli {
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything against the built-in simulated tenant and narrate what happens over 35 days.
    Demo {
        /// Simulated days.
        #[arg(long, default_value_t = demo::DAYS)]
        days: i64,
        /// Keep the demo's state (SQLite + audit archive) in this directory instead of a temporary one.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Also write the HTML report of the demo's final state.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Also write the report's CSV tables into this directory.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Snapshot licences, diff with the previous run, and report findings (license-check).
    Check {
        /// Also write the findings as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// A newer copy of Microsoft's licensing CSV (default: the embedded copy).
        #[arg(long)]
        licensing_csv: Option<PathBuf>,
        /// Check this tenant of the policy's [[tenants]] (GUID or domain) instead of the configured one.
        #[arg(long, conflicts_with = "all_tenants")]
        tenant: Option<String>,
        /// Check every tenant of the policy's [[tenants]], a few at once; one tenant's failure (revoked consent,
        /// throttling) never stops the others.
        #[arg(long)]
        all_tenants: bool,
        /// Tenants checked at once with --all-tenants.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
        concurrency: u64,
    },
    /// Send grace-period notices that are due (grace-period-notify).
    Notify {
        /// Print what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Notify for every tenant of the policy's [[tenants]], a few at once.
        #[arg(long)]
        all_tenants: bool,
        /// Tenants notified at once with --all-tenants.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
        concurrency: u64,
    },
    /// Archive new audit records and derive licence events (audit-fetch).
    AuditFetch {
        /// Fetch this tenant of the policy's [[tenants]] (GUID or domain) instead of the configured one.
        #[arg(long, conflicts_with = "all_tenants")]
        tenant: Option<String>,
        /// Fetch every tenant of the policy's [[tenants]], a few at once, each into its own partition of the
        /// archive and state.
        #[arg(long)]
        all_tenants: bool,
        /// Tenants fetched at once with --all-tenants.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
        concurrency: u64,
        /// Stop after this many seconds, as a Lambda invocation does at its deadline: every cursor stays where the
        /// archive stands ("incomplete": true) and the next run resumes there.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        max_seconds: Option<u64>,
    },
    /// Compare one day of the source with the archive.
    AuditVerify {
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        day: String,
    },
    /// Licences nobody uses (inactive, never signed in, disabled, overlapping) and unassigned seats, with their
    /// monthly cost and the command that would remove each; removes nothing. Saved for `licensewatch report`.
    Reclaim {
        /// Also write the rows as CSV (and the idle seats beside it, NAME-idle-seats.csv).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// A customer's monthly licence statement (seats at month end and the peak, unassigned seats and their cost,
    /// the month's changes and who made them) as CSV and PDF.
    Statement(statement::StatementArgs),
    /// Search the archived audit trail by user, operation, actor, source and time (local or S3 archive).
    AuditSearch(search::SearchArgs),
    /// List licence-change events from the audit archive.
    LicenseEvents {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Since when a user really has each licence (licensewatch's own first-seen history).
    History {
        /// The user (UPN or id).
        #[arg(long)]
        user: String,
    },
    /// Reprocess or change a user's licences (reprocess-user).
    Reprocess {
        /// The user (UPN or id).
        #[arg(long)]
        user: String,
        /// reprocess | assign | remove | copy_from
        #[arg(long, default_value = "reprocess")]
        action: String,
        /// SKU id or part number (repeat for several), for assign and remove.
        #[arg(long = "sku")]
        sku_ids: Vec<String>,
        /// The user whose licences copy_from copies.
        #[arg(long)]
        template_user: Option<String>,
        /// Show the Graph request; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Act even when remediation.max_actions_per_hour is spent (logged; the allow-list still applies).
        #[arg(long)]
        override_budget: bool,
    },
    /// Serve the signed remediation webhook on a local port.
    Serve {
        /// Port (0 = any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Accept and queue only; leave the queue to another worker (e.g. on AWS, SQS).
        #[arg(long)]
        no_worker: bool,
        /// Seconds a client has to send a request's head; idle keep-alive connections close after it too.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        header_timeout: u64,
        /// Seconds a client has to send a request's body.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        body_timeout: u64,
        /// Connections served at once.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
        max_connections: u64,
    },
    /// Create, renew or keep the Graph change-notification subscription (LICENSEWATCH_NOTIFICATION_URL).
    Subscribe,
    /// Write a commented licensewatch.toml from these flags, asking on a terminal for what they leave out; never
    /// overwrites a file.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "licensewatch.toml")]
        output: PathBuf,
        /// Tenant id or verified domain (for the environment lines it prints).
        #[arg(long)]
        tenant: Option<String>,
        /// The app registration's client id.
        #[arg(long)]
        client_id: Option<String>,
        /// global, usgov, usgovdod or china.
        #[arg(long)]
        cloud: Option<String>,
        /// Admins to notify, comma-separated.
        #[arg(long)]
        admins: Option<String>,
        /// The mailbox notices are mailed as.
        #[arg(long)]
        sender: Option<String>,
        /// IANA time zone of dates shown to people.
        #[arg(long)]
        time_zone: Option<String>,
        /// Tell mailbox owners too (true or false).
        #[arg(long)]
        notify_users: Option<bool>,
        /// Days before a deadline the admins are told, comma-separated (e.g. 21,14,7,3,1,0).
        #[arg(long)]
        admin_thresholds: Option<String>,
        /// Never ask (scripts).
        #[arg(long)]
        no_prompt: bool,
    },
    /// Read the licence history Microsoft's other sources no longer hold from the Purview audit log (at most 180
    /// days; audit-fetch does it on its first runs too): one step, or every step with --wait.
    Backfill {
        /// Days of history.
        #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(i64).range(1..=180))]
        days: i64,
        /// Read this tenant of the policy's [[tenants]] (GUID or domain) instead of the configured one.
        #[arg(long)]
        tenant: Option<String>,
        /// Ask again every 30 seconds until Microsoft's search is done and its records are archived.
        #[arg(long)]
        wait: bool,
    },
    /// Check the app registration and the tenant: the token, every permission each function needs (one harmless
    /// read each), the sender mailbox, the Management API feeds, Entra ID P1, delta, the state store and archive.
    /// Exits 0 only when nothing a function needs is missing.
    Doctor {
        /// Check this tenant of the policy's [[tenants]] (GUID or domain) instead of the configured one.
        #[arg(long, conflicts_with = "all_tenants")]
        tenant: Option<String>,
        /// Check every tenant of the policy's [[tenants]]: one row each.
        #[arg(long)]
        all_tenants: bool,
        /// Also send a test mail as the sender to this address (proves the Exchange application access policy).
        #[arg(long, value_name = "TO")]
        send_test_mail: Option<String>,
    },
    /// Serve the simulated Microsoft 365 tenant.
    Sim {
        /// Port (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Scenario file (JSON or TOML); default: the built-in story.
        #[arg(long, conflicts_with = "users")]
        scenario: Option<PathBuf>,
        /// Generate a tenant of N users instead.
        #[arg(long)]
        users: Option<usize>,
        /// Serve a fleet of this many generated tenants (a managed-service provider's customers), each of
        /// `--users` users (default 1,000); control calls pick one with the `x-sim-tenant` header.
        #[arg(long, conflicts_with_all = ["scenario", "tenant", "tls"], value_parser = clap::value_parser!(u64).range(1..=5000))]
        tenants: Option<u64>,
        /// Tenant GUID (default: the scenario's).
        #[arg(long)]
        tenant: Option<String>,
        /// Serve HTTPS with a throwaway certificate authority, written to the file printed as `ca_file` (Microsoft's
        /// client libraries, MSAL among them, accept only https authorities).
        #[arg(long)]
        tls: bool,
    },
    /// Write an HTML (and CSV) report from the state store.
    Report {
        /// HTML file to write.
        #[arg(long)]
        html: PathBuf,
        /// Directory for CSV tables.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The fleet page over every tenant of [[tenants]], each tenant's page beside it.
        #[arg(long)]
        all_tenants: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(LogFormat::Text, "warn");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("licensewatch: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and builds the runtime every command shares (the licensing CSV may be replaced).
pub(crate) async fn runtime(
    licensing_csv: Option<&std::path::Path>,
) -> Result<licensewatch_core::runtime::Runtime, String> {
    use licensewatch_core::runtime::{Runtime, load_config};
    let (settings, policy) = load_config().map_err(|e| e.to_string())?;
    let catalog = Runtime::catalog(licensing_csv).map_err(|e| e.to_string())?;
    Runtime::build(settings, policy, catalog)
        .await
        .map_err(|e| e.to_string())
}

/// The runtime of `--tenant ID` when it names another tenant of `[[tenants]]` than the configured one (`None`: the
/// configured tenant's own runtime serves).
pub(crate) async fn tenant_runtime(
    home: &licensewatch_core::runtime::Runtime,
    tenant: Option<&str>,
) -> Result<Option<licensewatch_core::runtime::Runtime>, String> {
    match tenant {
        Some(t) if !t.eq_ignore_ascii_case(&home.microsoft.tenant_id) => home
            .for_tenant(t)
            .await
            .map(Some)
            .map_err(|e| format!("--tenant {t}: {e}")),
        _ => Ok(None),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sim {
            port,
            bind,
            scenario,
            users,
            tenant,
            tls,
            tenants,
        } => match tenants {
            // clap refuses --tenants beside --scenario, --tenant or --tls.
            Some(n) => run_fleet(port, &bind, n as usize, users.unwrap_or(1_000)).await,
            None => run_sim(port, &bind, scenario, users, tenant, tls).await,
        },
        Command::Check {
            csv,
            licensing_csv,
            tenant,
            all_tenants: false,
            ..
        } => check::run(cli.json, csv, licensing_csv, tenant).await,
        Command::Check {
            licensing_csv,
            concurrency,
            all_tenants: true,
            ..
        } => {
            fleet::run_all(
                cli.json,
                licensing_csv,
                concurrency as usize,
                fleet::Job::Check,
            )
            .await
        }
        Command::History { user } => check::history(cli.json, &user).await,
        Command::Init {
            output,
            tenant,
            client_id,
            cloud,
            admins,
            sender,
            time_zone,
            notify_users,
            admin_thresholds,
            no_prompt,
        } => {
            let admin_thresholds = match admin_thresholds {
                Some(t) => Some(
                    init::split_list(&t)
                        .iter()
                        .map(|d| {
                            d.parse::<i64>().map_err(|_| {
                                format!("--admin-thresholds: '{d}' is not a number of days")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => None,
            };
            init::run(init::Answers {
                output,
                tenant,
                client_id,
                cloud,
                admins: admins.as_deref().map(init::split_list).unwrap_or_default(),
                sender,
                time_zone,
                notify_users,
                admin_thresholds,
                no_prompt,
            })
        }
        Command::Backfill { days, tenant, wait } => {
            audit::backfill(cli.json, tenant, days, wait).await
        }
        Command::Doctor {
            tenant,
            all_tenants,
            send_test_mail,
        } => doctor::run(cli.json, tenant, all_tenants, send_test_mail).await,
        Command::Notify {
            dry_run,
            all_tenants: false,
            ..
        } => notify::run(cli.json, dry_run).await,
        Command::Notify {
            dry_run,
            concurrency,
            all_tenants: true,
        } => {
            fleet::run_all(
                cli.json,
                None,
                concurrency as usize,
                fleet::Job::Notify(dry_run),
            )
            .await
        }
        Command::Serve {
            port,
            bind,
            no_worker,
            header_timeout,
            body_timeout,
            max_connections,
        } => {
            let limits = serve::Limits {
                header_timeout: std::time::Duration::from_secs(header_timeout),
                body_timeout: std::time::Duration::from_secs(body_timeout),
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            };
            serve::serve(port, &bind, !no_worker, limits).await
        }
        Command::Reprocess {
            user,
            action,
            sku_ids,
            template_user,
            dry_run,
            override_budget,
        } => {
            let options = serve::ReprocessOptions {
                dry_run,
                override_budget,
            };
            serve::reprocess(cli.json, user, action, sku_ids, template_user, options).await
        }
        Command::AuditFetch {
            tenant,
            all_tenants: false,
            max_seconds,
            ..
        } => within(max_seconds, audit::fetch(cli.json, tenant)).await,
        Command::AuditFetch {
            concurrency,
            all_tenants: true,
            max_seconds,
            ..
        } => {
            let all = fleet::run_all(cli.json, None, concurrency as usize, fleet::Job::Audit);
            within(max_seconds, all).await
        }
        Command::Subscribe => changes::subscribe(cli.json).await,
        Command::Reclaim { csv } => reclaim::run(cli.json, csv).await,
        Command::AuditSearch(args) => search::run(cli.json, args).await,
        Command::Statement(args) => statement::run(cli.json, args).await,
        Command::LicenseEvents { user } => audit::events(cli.json, user).await,
        Command::AuditVerify { day } => audit::verify(cli.json, &day).await,
        Command::Demo {
            days,
            state_dir,
            html,
            csv,
        } => demo::run(cli.json, days, state_dir, html, csv).await,
        Command::Report {
            html,
            csv,
            all_tenants: false,
        } => report::run(cli.json, &html, csv.as_deref()).await,
        Command::Report {
            html,
            csv,
            all_tenants: true,
        } => report::run_fleet(cli.json, &html, csv.as_deref()).await,
    }
}

/// `licensewatch sim --tenants N`: a fleet of generated tenants from one process.
async fn run_fleet(port: u16, bind: &str, tenants: usize, users: usize) -> Result<(), String> {
    let addr: SocketAddr = format!("{bind}:{port}")
        .parse()
        .map_err(|_| format!("--bind '{bind}' with --port {port} is not a socket address"))?;
    let now = Scenario::default_story().now;
    let handle = licensewatch_sim::start_fleet(Scenario::fleet(tenants, users, now), addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!(
        "{}",
        serde_json::json!({"base_url": handle.base_url, "tenant_id": handle.tenant_id, "tenants": handle.tenant_ids})
    );
    eprintln!(
        "simulated fleet of {tenants} tenants of {users} users at {} (control calls name a tenant with the x-sim-tenant header); Ctrl-C stops it",
        handle.base_url
    );
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn run_sim(
    port: u16,
    bind: &str,
    scenario: Option<PathBuf>,
    users: Option<usize>,
    tenant: Option<String>,
    tls: bool,
) -> Result<(), String> {
    let base = match &scenario {
        Some(path) => Scenario::load(path).map_err(|e| e.to_string())?,
        None => Scenario::default_story(),
    };
    let tenant_id = match tenant {
        Some(t) => {
            uuid::Uuid::parse_str(&t).map_err(|_| format!("--tenant '{t}' is not a GUID"))?;
            t
        }
        None => base.tenant_id.clone(),
    };
    let mut scenario = match users {
        Some(n) => Scenario::generated(n, &tenant_id, base.now),
        None => base,
    };
    scenario.tenant_id = tenant_id;
    let addr: SocketAddr = format!("{bind}:{port}")
        .parse()
        .map_err(|_| format!("--bind '{bind}' with --port {port} is not a socket address"))?;
    let (handle, ca_file) = if tls {
        let identity = licensewatch_sim::TlsIdentity::generate()?;
        let handle = licensewatch_sim::start_tls(scenario, addr, &identity)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let port = handle
            .base_url
            .rsplit(':')
            .next()
            .unwrap_or("0")
            .to_string();
        let path = std::env::temp_dir().join(format!("licensewatch-sim-{port}-ca.pem"));
        std::fs::write(&path, &identity.ca_pem)
            .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
        (handle, Some(path))
    } else {
        let handle = licensewatch_sim::start(scenario, addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        (handle, None)
    };
    let mut info = serde_json::json!({"base_url": handle.base_url, "tenant_id": handle.tenant_id});
    if let Some(path) = &ca_file {
        info["ca_file"] = serde_json::json!(path.display().to_string());
    }
    println!("{info}");
    eprintln!(
        "simulated tenant {} at {} (Graph {0}/v1.0, token {0}/{1}/oauth2/v2.0/token, control {0}/_sim/); Ctrl-C stops it",
        handle.tenant_id, handle.base_url
    );
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs `work` with a deadline `max_seconds` from now, when one is given.
async fn within<F: std::future::Future>(max_seconds: Option<u64>, work: F) -> F::Output {
    match max_seconds {
        Some(s) => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(s);
            licensewatch_core::runtime::deadline::within(deadline, work).await
        }
        None => work.await,
    }
}
