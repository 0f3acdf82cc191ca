//! The runtime the demo's chapters run against a simulated tenant: configured from variables, as a user would
//! configure licensewatch, with its state in the demo's directory.

use std::collections::HashMap;

use licensewatch_core::adapters::auth::Credential;
use licensewatch_core::adapters::credentials::Microsoft;
use licensewatch_core::config::Settings;
use licensewatch_core::domain::catalog::Catalog;
use licensewatch_core::domain::retry::RetryPolicy;
use licensewatch_core::policy::Policy;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::secret::SecretString;

/// The demo's app registration (the simulator accepts any).
pub(crate) const CLIENT_ID: &str = "0f0f0f0f-1111-2222-3333-444455556666";

/// A runtime against a simulated tenant, configured as a user would (variables), with its state in `dir`.
pub(crate) async fn sim_runtime(
    sim: &licensewatch_sim::SimHandle,
    dir: &std::path::Path,
    db: &str,
    archive: &str,
    extra: &[(&'static str, String)],
    policy: Policy,
) -> Result<Runtime, String> {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("LICENSEWATCH_TENANT_ID", sim.tenant_id.clone()),
        ("LICENSEWATCH_CLIENT_ID", CLIENT_ID.to_string()),
        ("LICENSEWATCH_CLIENT_SECRET", "demo-client-secret".into()),
        ("LICENSEWATCH_GRAPH_URL", sim.base_url.clone()),
        ("LICENSEWATCH_LOGIN_URL", sim.base_url.clone()),
        ("LICENSEWATCH_MANAGE_URL", sim.base_url.clone()),
        (
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.join(db).display()),
        ),
        (
            "LICENSEWATCH_ARCHIVE",
            format!("file:{}", dir.join(archive).display()),
        ),
    ]);
    vars.extend(extra.iter().cloned());
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).map_err(|e| e.to_string())?;
    let microsoft = Microsoft::build(
        &settings,
        RetryPolicy::default(),
        &sim.tenant_id,
        CLIENT_ID,
        Credential::Secret(SecretString::new("demo-client-secret")),
        "",
    );
    Runtime::with_microsoft(settings, policy, microsoft, Catalog::embedded())
        .await
        .map_err(|e| e.to_string())
}
