//! license-check Lambda: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};
use licensewatch_core::runtime::telemetry::{self, LogFormat};
use licensewatch_core::runtime::{Runtime, load_config};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json, "info");
    let (settings, policy) = load_config()?;
    // Built once per cold start and lent to every invocation.
    let rt = Runtime::build(settings, policy, Runtime::catalog(None)?).await?;
    let deps = license_check::Deps::new(rt);
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            let span = telemetry::invocation_span(
                "license-check",
                &ev.context.request_id,
                &deps.rt.microsoft.tenant_id,
            );
            license_check::handle_event(deps, ev.payload)
                .instrument(span)
                .await
                .map_err(license_check::Failure)
        },
    ))
    .await
}
