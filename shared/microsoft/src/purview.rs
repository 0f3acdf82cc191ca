//! [`AuditLogQueries`] over Graph v1.0's `/security/auditLog/queries`.

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;
use crate::graph::GraphClient;
use crate::ports::audit_feed::{AuditLogQueries, AuditLogQuery, NewAuditLogQuery};
use crate::ports::directory::{BoxPages, path_segment};

const QUERIES: &str = "security/auditLog/queries";

#[async_trait]
impl AuditLogQueries for GraphClient {
    async fn audit_queries(&self) -> Result<Vec<AuditLogQuery>, ApiError> {
        let mut pages = self.pages::<AuditLogQuery>(QUERIES);
        let mut all = Vec::new();
        while let Some(page) = pages.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    async fn create_audit_query(
        &self,
        query: &NewAuditLogQuery,
    ) -> Result<AuditLogQuery, ApiError> {
        self.post(QUERIES, query).await
    }

    async fn audit_query(&self, id: &str) -> Result<AuditLogQuery, ApiError> {
        self.get(&format!("{QUERIES}/{}", path_segment(id))).await
    }

    fn audit_query_records(&self, id: &str) -> BoxPages<'_, Value> {
        Box::new(self.pages::<Value>(&format!("{QUERIES}/{}/records", path_segment(id))))
    }
}
