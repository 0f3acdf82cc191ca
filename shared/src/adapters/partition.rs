//! audit-fetch's book-keeping for one tenant of many in a shared state store. The deployment's own tenant keeps the
//! names it always had (an existing archive goes on where it stopped); every other tenant's cursors, record and blob
//! ids, archive-object claims and gaps are stored under `tenant:{id}/`, so two customers can never share a cursor,
//! take each other's record ids for duplicates, or settle each other's unfinished objects.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::store::{AuditState, Backend, Gap, StoreError};

/// What every partitioned name starts with.
const PARTITIONED: &str = "tenant:";

/// A tenant's partition of a shared [`AuditState`].
pub struct AuditPartition {
    inner: Arc<dyn Backend>,
    /// `tenant:{lower-case id}/`, or empty for the deployment's own tenant.
    prefix: String,
}

impl AuditPartition {
    /// The deployment's own tenant: its names as they always were, without the other tenants' partitions.
    pub fn home(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            prefix: String::new(),
        }
    }

    /// Another tenant's partition (its id is matched without case).
    pub fn tenant(inner: Arc<dyn Backend>, tenant_id: &str) -> Self {
        Self {
            inner,
            prefix: format!("{PARTITIONED}{}/", tenant_id.to_ascii_lowercase()),
        }
    }

    fn name<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match self.prefix.is_empty() {
            true => Cow::Borrowed(name),
            false => Cow::Owned(format!("{}{name}", self.prefix)),
        }
    }

    fn names<'a>(&self, names: &'a [String]) -> Cow<'a, [String]> {
        match self.prefix.is_empty() {
            true => Cow::Borrowed(names),
            false => Cow::Owned(names.iter().map(|n| self.name(n).into_owned()).collect()),
        }
    }

    /// A stored name of this partition, as its tenant knows it; `None` for another partition's.
    fn own(&self, stored: String) -> Option<String> {
        match self.prefix.is_empty() {
            true => (!stored.starts_with(PARTITIONED)).then_some(stored),
            false => stored.strip_prefix(&self.prefix).map(str::to_string),
        }
    }
}

#[async_trait]
impl AuditState for AuditPartition {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.cursor(&self.name(name)).await
    }

    async fn set_cursor(&self, name: &str, value: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.set_cursor(&self.name(name), value).await
    }

    async fn seen_records(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let seen = self.inner.seen_records(&self.names(ids)).await?;
        Ok(seen.into_iter().filter_map(|id| self.own(id)).collect())
    }

    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let claimed = self
            .inner
            .claim_records(&self.name(object_key), &self.names(ids), now)
            .await?;
        Ok(claimed.into_iter().filter_map(|id| self.own(id)).collect())
    }

    async fn confirm_object(&self, object_key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.confirm_object(&self.name(object_key), now).await
    }

    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError> {
        let all = self.inner.unconfirmed_objects().await?;
        Ok(all.into_iter().filter_map(|key| self.own(key)).collect())
    }

    async fn release_object(&self, object_key: &str) -> Result<(), StoreError> {
        self.inner.release_object(&self.name(object_key)).await
    }

    async fn mark_records(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.mark_records(&self.names(ids), now).await
    }

    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError> {
        self.inner.blob_done(&self.name(content_id)).await
    }

    async fn mark_blob(&self, content_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.mark_blob(&self.name(content_id), now).await
    }

    async fn expire_index(&self, before: DateTime<Utc>) -> Result<(), StoreError> {
        // The same age limit holds for every tenant: expiring the shared index is right for all of them.
        self.inner.expire_index(before).await
    }

    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        let gap = Gap {
            source: self.name(&gap.source).into_owned(),
            ..gap.clone()
        };
        self.inner.record_gap(&gap).await
    }

    async fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let all = self.inner.gaps().await?;
        Ok(all
            .into_iter()
            .filter_map(|g| {
                let source = self.own(g.source.clone())?;
                Some(Gap { source, ..g })
            })
            .collect())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::ports::testing::MemoryStore;

    fn at(h: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, h, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn two_tenants_share_a_store_without_sharing_cursors_ids_objects_or_gaps() {
        let shared: Arc<dyn Backend> = Arc::new(MemoryStore::default());
        let home = AuditPartition::home(shared.clone());
        let a = AuditPartition::tenant(shared.clone(), "Customer-A.onmicrosoft.com");
        let b = AuditPartition::tenant(shared.clone(), "customer-b.onmicrosoft.com");
        let ids = vec!["r1".to_string(), "r2".to_string()];

        a.set_cursor("directory_audits", at(5)).await.unwrap();
        assert_eq!(a.cursor("directory_audits").await.unwrap(), Some(at(5)));
        assert_eq!(b.cursor("directory_audits").await.unwrap(), None);
        assert_eq!(home.cursor("directory_audits").await.unwrap(), None);

        // The same record ids in two customers' logs are two records.
        assert_eq!(
            a.claim_records("directory_audit/x.ndjson.gz", &ids, at(5))
                .await
                .unwrap(),
            ids
        );
        assert_eq!(
            b.claim_records("directory_audit/x.ndjson.gz", &ids, at(5))
                .await
                .unwrap(),
            ids
        );
        assert_eq!(
            home.claim_records("directory_audit/x.ndjson.gz", &ids, at(5))
                .await
                .unwrap(),
            ids
        );
        // Each settles only its own unfinished objects, under the key it used.
        assert_eq!(
            a.unconfirmed_objects().await.unwrap(),
            vec!["directory_audit/x.ndjson.gz"]
        );
        assert_eq!(
            home.unconfirmed_objects().await.unwrap(),
            vec!["directory_audit/x.ndjson.gz"]
        );
        a.confirm_object("directory_audit/x.ndjson.gz", at(5))
            .await
            .unwrap();
        assert!(a.unconfirmed_objects().await.unwrap().is_empty());
        assert_eq!(b.unconfirmed_objects().await.unwrap().len(), 1);
        assert_eq!(
            a.seen_records(&ids).await.unwrap(),
            ids.iter().cloned().collect()
        );
        assert!(
            a.claim_records("directory_audit/y.ndjson.gz", &ids, at(6))
                .await
                .unwrap()
                .is_empty(),
            "a repeat within the tenant is still a repeat"
        );

        a.mark_blob("blob-1", at(5)).await.unwrap();
        assert!(a.blob_done("blob-1").await.unwrap());
        assert!(!b.blob_done("blob-1").await.unwrap());
        assert!(!home.blob_done("blob-1").await.unwrap());

        let gap = Gap {
            source: "directory_audit".into(),
            from: at(1),
            to: at(2),
        };
        b.record_gap(&gap).await.unwrap();
        assert_eq!(b.gaps().await.unwrap(), vec![gap]);
        assert!(a.gaps().await.unwrap().is_empty());
        assert!(home.gaps().await.unwrap().is_empty());
    }
}
