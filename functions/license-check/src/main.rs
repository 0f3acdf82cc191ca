//! license-check Lambda: wiring only.

use licensewatch_lambda::{Handler, serve, start};
use serde_json::Value;

struct LicenseCheck(license_check::Deps);

impl Handler for LicenseCheck {
    fn tenant(&self) -> &str {
        &self.0.home.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, licensewatch_core::error::CoreError> {
        license_check::handle_event(&self.0, payload).await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let deps = license_check::Deps::new(start().await?);
    serve("license-check", &LicenseCheck(deps)).await
}
