//! [`TenantProbe`] over Microsoft's real APIs: Graph reads whose answers are discarded, the token's `roles`, the
//! Management Activity API's subscriptions and recent listings, and the optional test mail.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::auth::Audience;
use crate::credentials::Microsoft;
use crate::error::ApiError;
use crate::ports::audit_feed::Window;
use crate::ports::directory::path_segment;
use crate::ports::probe::{Feed, TenantProbe};

#[async_trait]
impl TenantProbe for Microsoft {
    async fn sign_in(&self) -> Result<Option<Vec<String>>, ApiError> {
        let token = self.tokens.token(Audience::Graph).await?;
        Ok(crate::domain::doctor::token_roles(token.expose()))
    }

    async fn read(&self, relative: &str) -> Result<(), ApiError> {
        self.graph.reach(relative).await
    }

    async fn feeds(&self) -> Result<Vec<Feed>, ApiError> {
        Ok(self
            .management
            .list_subscriptions()
            .await?
            .into_iter()
            .map(|s| Feed {
                enabled: s
                    .status
                    .as_deref()
                    .is_some_and(|st| st.eq_ignore_ascii_case("enabled")),
                content_type: s.content_type,
            })
            .collect())
    }

    async fn recent_content(
        &self,
        content_type: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, ApiError> {
        let window = Window {
            start: now - Duration::hours(24),
            end: now,
        };
        let mut pages = self.management.content_pages(content_type, window);
        let mut blobs = 0;
        while let Some(page) = pages.next_page().await? {
            blobs += page.len();
        }
        Ok(blobs)
    }

    async fn send_test_mail(&self, sender: &str, to: &str) -> Result<(), ApiError> {
        let body = json!({
            "message": {
                "subject": "licensewatch doctor: test mail",
                "body": {"contentType": "Text", "content": "licensewatch can send mail as this mailbox."},
                "toRecipients": [{"emailAddress": {"address": to}}]
            },
            "saveToSentItems": false
        });
        self.graph
            .post::<_, serde_json::Value>(
                &format!("users/{}/sendMail", path_segment(sender)),
                &body,
            )
            .await
            .map(|_| ())
    }
}
