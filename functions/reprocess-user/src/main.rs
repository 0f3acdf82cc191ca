//! reprocess-user Lambda: wiring only.

use licensewatch_core::error::CoreError;
use licensewatch_lambda::{Handler, serve, start};
use serde_json::Value;

struct ReprocessUser(reprocess_user::Deps);

impl Handler for ReprocessUser {
    fn tenant(&self) -> &str {
        &self.0.rt.microsoft.tenant_id
    }

    async fn handle(&self, payload: Value) -> Result<Value, CoreError> {
        reprocess_user::handle_event(&self.0, payload).await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let rt = start().await?;
    // Without a webhook secret the function fails here, at its cold start: closed.
    let auth = rt.webhook_auth()?;
    let http = rt.microsoft.http.clone();
    // A desk that cannot be built (a credential missing) costs its comments, not the remediations: said at start.
    let desks = rt.ticket_desks().unwrap_or_else(|e| {
        tracing::error!(error = %e, "service desks not available: outcomes go to callbacks only");
        Vec::new()
    });
    let deps = reprocess_user::Deps {
        rt,
        auth,
        http,
        desks,
    };
    serve("reprocess-user", &ReprocessUser(deps)).await
}
