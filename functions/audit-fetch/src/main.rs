//! audit-fetch Lambda: wiring only.

use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_lambda::{Handler, parse_event, serve, start, to_json};
use serde_json::Value;

struct AuditFetch(Runtime);

impl Handler for AuditFetch {
    fn tenant(&self) -> &str {
        &self.0.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, CoreError> {
        let event = parse_event(payload, "an EventBridge event")?;
        to_json(&audit_fetch::handle(&self.0, event).await?)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve("audit-fetch", &AuditFetch(start().await?)).await
}
