//! audit-fetch Lambda: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};
use licensewatch_core::runtime::telemetry::{self, LogFormat};
use licensewatch_core::runtime::{Runtime, load_config};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json, "info");
    // Built once per cold start and lent to every invocation.
    let (settings, policy) = load_config()?;
    let rt = Runtime::build(settings, policy, Runtime::catalog(None)?).await?;
    let rt = &rt;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        let span = telemetry::invocation_span(
            "audit-fetch",
            &ev.context.request_id,
            &rt.microsoft.tenant_id,
        );
        audit_fetch::handle(rt, ev.payload)
            .instrument(span)
            .await
            .map_err(audit_fetch::Failure)
    }))
    .await
}
