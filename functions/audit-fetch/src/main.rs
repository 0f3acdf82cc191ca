//! audit-fetch Lambda: wiring only.

use licensewatch_core::error::CoreError;
use licensewatch_lambda::{Handler, serve, start};
use serde_json::Value;

struct AuditFetch(audit_fetch::Deps);

impl Handler for AuditFetch {
    fn tenant(&self) -> &str {
        &self.0.home.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, CoreError> {
        audit_fetch::handle_event(&self.0, payload).await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let deps = audit_fetch::Deps::new(start().await?);
    serve("audit-fetch", &AuditFetch(deps)).await
}
