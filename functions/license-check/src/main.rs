//! license-check Lambda: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};
use licensewatch_core::runtime::{Runtime, load_config};
use licensewatch_core::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json, "info");
    let (settings, policy) = load_config()?;
    // Built once per cold start and lent to every invocation.
    let rt = Runtime::build(settings, policy, Runtime::catalog(None)?).await?;
    let rt = &rt;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        license_check::handle(rt, ev.payload)
            .await
            .map_err(license_check::Failure)
    }))
    .await
}
