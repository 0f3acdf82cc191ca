//! Errors a person can act on: they name the file, directory or URL involved, read as sentences (no Rust Debug
//! text), and a crashed write leaves nothing behind for long.

use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::adapters::http::{ApiError, Service};
use licensewatch_core::adapters::sqlite::SqliteStore;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::archive::AuditArchive;
use licensewatch_core::ports::store::StoreError;

#[test]
fn a_database_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    // A directory where the database file should be: SQLite cannot open it (even as root).
    let path = dir.path().join("state.db");
    std::fs::create_dir(&path).expect("dir");
    let err = SqliteStore::open(&path).expect_err("not a database");
    let text = CoreError::from(err).to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(text.matches("state store").count(), 1, "said once: {text}");
}

#[tokio::test]
async fn archive_errors_name_the_path_and_partial_files_are_swept() {
    let dir = tempfile::tempdir().expect("tmp");
    // The archive root is a file: nothing can be written under it.
    let root = dir.path().join("archive");
    std::fs::write(&root, b"not a directory").expect("file");
    let err = FileArchive::new(&root)
        .put_new("directory_audit/x/2026/11/21/a.ndjson.gz", b"x".to_vec())
        .await
        .expect_err("cannot write");
    let text = CoreError::from(err).to_string();
    assert!(text.contains(&root.display().to_string()), "{text}");
    assert!(text.starts_with("audit archive:"), "{text}");

    // A crash mid-write leaves a temporary file; the next run's clean-up removes old ones and keeps young ones.
    let archive_dir = dir.path().join("ok");
    let day = archive_dir.join("directory_audit/x/2026/11/21");
    std::fs::create_dir_all(&day).expect("dirs");
    std::fs::write(day.join("a.ndjson.tmp-0f0f"), b"partial").expect("tmp");
    std::fs::write(day.join("b.ndjson.gz"), b"object").expect("object");
    let archive = FileArchive::new(&archive_dir);
    assert_eq!(
        archive.clean_up().await.expect("sweep"),
        0,
        "a young file may be a write in progress"
    );
    assert_eq!(
        archive
            .sweep_temporary(std::time::Duration::ZERO)
            .expect("sweep"),
        1
    );
    assert!(!day.join("a.ndjson.tmp-0f0f").exists());
    assert!(day.join("b.ndjson.gz").exists(), "objects are never swept");
}

#[test]
fn api_errors_read_as_sentences() {
    let with_id = ApiError::Unavailable {
        service: Service::Graph,
        status: 503,
        code: "serviceNotAvailable".into(),
        message: "Service unavailable".into(),
        request_id: Some("4f1b7c1e-0000-4000-8000-000000000001".into()),
    };
    let without = ApiError::Rejected {
        service: Service::Graph,
        status: 400,
        code: "Request_BadRequest".into(),
        message: "Invalid filter".into(),
        request_id: None,
    };
    let throttled = ApiError::Throttled {
        service: Service::Management,
        status: 429,
        code: "AF429".into(),
        retry_after: Some(std::time::Duration::from_secs(30)),
        request_id: None,
    };
    for e in [&with_id, &without, &throttled] {
        let text = e.to_string();
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }
    assert!(
        with_id
            .to_string()
            .ends_with("; request id 4f1b7c1e-0000-4000-8000-000000000001")
    );
    assert!(throttled.to_string().contains("it asked to wait 30 s"));
    let store = CoreError::from(StoreError::Database("disk I/O error".into())).to_string();
    assert_eq!(store, "state store: disk I/O error");
}

/// A policy file holding every key, each with a valid value (arrays of tables once each).
const EVERY_KEY: &str = r#"
[tenant]
delayed_delicensing = false
time_zone = "Europe/Berlin"
[check]
mass_delicensing_min_users = 50
mass_delicensing_percent = 5.0
mass_delicensing_window_minutes = 60
sku_low_seats = 5
renewal_notice_days = 30
full_scan_hours = 24
forecast_horizon_days = 14
forecast_window_days = 30
cloud_licensing = false
[grace]
never_licensed_days = 30
never_licensed_retention_days = 30
removed_retention_days = 30
delayed_access_days = 30
delayed_retention_days = 60
[notify]
admins = ["it@contoso.com"]
sender = "licensewatch@contoso.com"
notify_users = true
admin_thresholds_days = [7]
user_thresholds_days = [2]
[[notify.webhooks]]
kind = "generic"
url = "https://hooks.contoso.com/lw"
secret_env = "LW_HOOK_SECRET"
[[notify.tickets]]
system = "jira"
url = "https://contoso.atlassian.net"
user_env = "LW_JIRA_USER"
token_env = "LW_JIRA_TOKEN"
password_env = "LW_UNUSED"
client_id_env = "LW_UNUSED"
client_secret_env = "LW_UNUSED"
public_key_env = "LW_UNUSED"
private_key_env = "LW_UNUSED"
secret_env = "LW_UNUSED"
integration_code_env = "LW_UNUSED"
login_company = "contoso"
project = "IT"
queue = "IT"
company = "Contoso"
resolved_status = "Done"
[notify.tickets.tenants]
[audit]
first_run_days = 30
relist_hours = 24
content_types = ["Audit.AzureActiveDirectory"]
publisher_id = "48a80680-7326-48cd-9935-b556b81d3a4e"
max_parallel_blobs = 8
backfill_days = 180            # history read once from the Purview audit log (at most 180; 0 = off)
[remediation]
auto_reprocess = false
allow_remove = false
sku_allow_list = ["SPE_E3"]
max_actions_per_hour = 50
verify_within_hours = 24
[webhook]
secrets_env = ["LW_WEBHOOK"]
github_style_secret_env = "LW_JIRA"
tolerance_seconds = 300
[[webhook.sources]]
name = "halopsa"
scheme = "shared-secret"
secret_env = "LW_HALO"
header = "Authorization"
system = "halopsa"
action = "reprocess"
[webhook.sources.fields]
user = "/ticket/user_emailaddress"
action = "/ticket/customfields/action"
sku_ids = "/ticket/customfields/skus"
template_user = "/ticket/customfields/template"
ticket_id = "/ticket/id"
callback_url = "/ticket/callback"
dry_run = "/ticket/dry_run"
[[webhook.sources]]
name = "connectwise"
scheme = "connectwise"
psa_url = "https://na.myconnectwise.net"
[reclaim]
inactive_days = 90
[prices]
currency = "EUR"
[prices.monthly]
SPE_E3 = 33.75
[[suppressions]]
tenant = "contoso.onmicrosoft.com"
sku = "SPE_E3"
kind = "sku_capacity"
until = "2027-01-31"
reason = "the reseller renews it"
[[tenants]]
id = "customer2.onmicrosoft.com"
secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lw/c2-AbCdEf"
client_id = "22222222-3333-4444-5555-666666666666"
delayed_delicensing = false
time_zone = "Europe/Paris"
[tenants.audit]
content_types = ["Audit.Exchange"]
[[tenants.notify.webhooks]]
kind = "teams"
url = "https://contoso.webhook.office.com/x"
[[tenants.suppressions]]
kind = "unlicensed_mailbox"
until = "2027-01-31"
reason = "migration in progress"
"#;

/// Keys whose values are free text by nature (names of things the tenant or the deployment chooses).
const FREE_TEXT: [&str; 23] = [
    "notify.webhooks.secret_env",
    "notify.tickets.user_env",
    "notify.tickets.token_env",
    "notify.tickets.password_env",
    "notify.tickets.client_id_env",
    "notify.tickets.client_secret_env",
    "notify.tickets.public_key_env",
    "notify.tickets.private_key_env",
    "notify.tickets.secret_env",
    "notify.tickets.integration_code_env",
    "notify.tickets.login_company",
    "notify.tickets.queue",
    "notify.tickets.company",
    "notify.tickets.resolved_status",
    "webhook.sources.system",
    "remediation.sku_allow_list",
    "webhook.secrets_env",
    "webhook.github_style_secret_env",
    "webhook.sources.secret_env",
    "prices.currency",
    "suppressions.sku",
    "suppressions.reason",
    "tenants.suppressions.reason",
];

/// `tenants[1].notify.webhooks[0].kind` → `tenants.notify.webhooks.kind`.
fn unindexed(key: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every string value of a TOML tree with its key (`notify.admins[0]`).
fn string_leaves(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::String(_) => out.push(path.to_string()),
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, &format!("{path}[{i}]"), out);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_leaves(v, &key, out);
            }
        }
        _ => {}
    }
}

/// Every key of a TOML tree, unindexed.
fn all_keys(value: &toml::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        toml::Value::Array(items) => items.iter().for_each(|v| all_keys(v, path, out)),
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert(key.clone());
                all_keys(v, &key, out);
            }
        }
        _ => {}
    }
}

/// Sets the value at `path` (`a.b[1].c`) to a string.
fn set_string(root: &mut toml::Value, path: &str, text: &str) {
    let mut node = root;
    for part in path.split('.') {
        let (name, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        node = node.get_mut(name).expect("key exists");
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().expect("index");
            node = node.get_mut(i).expect("element exists");
        }
    }
    *node = toml::Value::String(text.into());
}

fn load(
    text: &str,
) -> Result<licensewatch_core::policy::Policy, licensewatch_core::config::ConfigError> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("licensewatch.toml");
    std::fs::write(&path, text).expect("write");
    licensewatch_core::runtime::load_policy(None, &path, true)
}

#[test]
fn every_policy_value_from_a_closed_set_is_checked_when_the_policy_loads() {
    use licensewatch_core::policy::{Policy, SuppressionEntry, TenantEntry, WebhookChannel};
    let full: toml::Value = toml::from_str(EVERY_KEY).expect("TOML");
    load(EVERY_KEY).expect("the full example is valid");

    // The example holds every key the policy has (a new key must join it, and so this walk).
    let mut every = Policy::default();
    every.notify.webhooks.push(WebhookChannel::default());
    every
        .notify
        .tickets
        .push(licensewatch_core::policy::TicketChannel::default());
    every
        .webhook
        .sources
        .push(licensewatch_core::policy::WebhookSource::default());
    every.suppressions.push(SuppressionEntry::default());
    every.tenants.push(TenantEntry::default());
    let mut declared = Default::default();
    all_keys(
        &toml::Value::try_from(&every).expect("serialise"),
        "",
        &mut declared,
    );
    let mut written = Default::default();
    all_keys(&full, "", &mut written);
    let missing: Vec<_> = declared.difference(&written).collect();
    assert!(
        missing.is_empty(),
        "keys missing from EVERY_KEY: {missing:?}"
    );

    // Each string value replaced by nonsense: refused, naming its key, unless the key is free text.
    let mut leaves = Vec::new();
    string_leaves(&full, "", &mut leaves);
    let mut accepted = Vec::new();
    for key in &leaves {
        let mut bad = full.clone();
        set_string(&mut bad, key, "Bogus value!");
        let text = toml::to_string(&bad).expect("TOML");
        match load(&text) {
            Ok(_) => accepted.push(unindexed(key)),
            Err(e) => assert!(
                e.problems
                    .iter()
                    .any(|p| unindexed(&p.name) == unindexed(key)),
                "{key}: the problem names another key: {e}"
            ),
        }
    }
    accepted.sort();
    accepted.dedup();
    let mut free: Vec<String> = FREE_TEXT.iter().map(|k| k.to_string()).collect();
    free.sort();
    assert_eq!(accepted, free, "keys that accept any text");
}

#[test]
fn an_unknown_content_type_is_named_with_the_allowed_ones() {
    let err = load("[audit]\ncontent_types = [\"Audit.AzureActiveDirectory\", \"Audit.Bogus\"]\n")
        .expect_err("not a content type");
    assert_eq!(err.problems[0].name, "audit.content_types[1]", "{err}");
    for allowed in licensewatch_core::policy::CONTENT_TYPES {
        assert!(err.problems[0].problem.contains(allowed), "{err}");
    }
    let err = load("[[tenants]]\nid = \"c2.onmicrosoft.com\"\n[tenants.audit]\ncontent_types = [\"DLP.Bogus\"]\n")
        .expect_err("a tenant's own");
    assert_eq!(
        err.problems[0].name, "tenants[0].audit.content_types[0]",
        "{err}"
    );
}

#[test]
fn an_integer_too_large_for_toml_names_its_key_and_line() {
    let err =
        load("[tenant]\ntime_zone = \"UTC\"\n\n[check]\nsku_low_seats = 99999999999999999999\n")
            .expect_err("overflow");
    assert_eq!(err.problems[0].name, "check.sku_low_seats", "{err}");
    assert!(err.problems[0].problem.contains("line 5"), "{err}");
    let err = load(
        "[[tenants]]\nid = \"a.onmicrosoft.com\"\n[[tenants]]\nid = \"b.onmicrosoft.com\"\n[tenants.check]\nsku_low_seats = 99999999999999999999\n",
    )
    .expect_err("overflow in the second tenant");
    assert_eq!(
        err.problems[0].name, "tenants[1].check.sku_low_seats",
        "{err}"
    );
    let err = load("[check]\nmass_delicensing_min_users = 99999999999\n").expect_err("u32");
    assert_eq!(
        err.problems[0].name, "check.mass_delicensing_min_users",
        "{err}"
    );
}
