//! reprocess-user Lambda: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};
use licensewatch_core::runtime::telemetry::{self, LogFormat};
use licensewatch_core::runtime::{Runtime, load_config};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json, "info");
    // Built once per cold start; without a webhook secret the function fails here, closed.
    let (settings, policy) = load_config()?;
    let rt = Runtime::build(settings, policy, Runtime::catalog(None)?).await?;
    let auth = rt.webhook_auth()?;
    let deps = reprocess_user::Deps {
        rt,
        auth,
        http: reqwest::Client::new(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            let span = telemetry::invocation_span(
                "reprocess-user",
                &ev.context.request_id,
                &deps.rt.microsoft.tenant_id,
            );
            reprocess_user::handle_event(deps, ev.payload)
                .instrument(span)
                .await
                .map_err(reprocess_user::Failure)
        },
    ))
    .await
}
