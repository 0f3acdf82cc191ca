//! grace-period-notify Lambda: wiring only.

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
    let channels = rt.notify_channels(None)?;
    let (rt, channels) = (&rt, &channels);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        let span = telemetry::invocation_span(
            "grace-period-notify",
            &ev.context.request_id,
            &rt.microsoft.tenant_id,
        );
        grace_period_notify::handle(rt, channels, ev.payload)
            .instrument(span)
            .await
            .map_err(grace_period_notify::Failure)
    }))
    .await
}
