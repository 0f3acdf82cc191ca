//! grace-period-notify Lambda: wiring only.

use licensewatch_core::error::CoreError;
use licensewatch_lambda::{Handler, serve, start};
use serde_json::Value;

struct GracePeriodNotify(grace_period_notify::Deps);

impl Handler for GracePeriodNotify {
    fn tenant(&self) -> &str {
        &self.0.home.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, CoreError> {
        grace_period_notify::handle_event(&self.0, payload).await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let deps = grace_period_notify::Deps::new(start().await?);
    // The channels are built per invocation (per tenant); a misconfigured channel still stops the cold start.
    deps.home.notify_channels(None)?;
    serve("grace-period-notify", &GracePeriodNotify(deps)).await
}
