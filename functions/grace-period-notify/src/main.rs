//! grace-period-notify Lambda: wiring only.

use licensewatch_core::error::CoreError;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::runtime::Runtime;
use licensewatch_lambda::{Handler, parse_event, serve, start, to_json};
use serde_json::Value;

struct GracePeriodNotify {
    rt: Runtime,
    channels: Vec<Box<dyn Channel>>,
}

impl Handler for GracePeriodNotify {
    fn tenant(&self) -> &str {
        &self.rt.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, CoreError> {
        let event = parse_event(payload, "an EventBridge event")?;
        to_json(&grace_period_notify::handle(&self.rt, &self.channels, event).await?)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let rt = start().await?;
    let channels = rt.notify_channels(None)?;
    serve("grace-period-notify", &GracePeriodNotify { rt, channels }).await
}
