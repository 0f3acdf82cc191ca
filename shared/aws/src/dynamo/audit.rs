//! audit-fetch's book-keeping in DynamoDB: cursors, the record and blob index, archive-object claims and gaps.

use super::*;

#[async_trait]
impl AuditState for DynamoStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.get(&self.scoped("cursor"), name).await? else {
            return Ok(None);
        };
        let v = attr_s(&item, "value").unwrap_or_default();
        DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.to_utc()))
            .map_err(|e| StoreError::Corrupt(format!("cursor '{name}': {e}")))
    }

    async fn set_cursor(&self, name: &str, value: DateTime<Utc>) -> Result<(), StoreError> {
        let mut item = key(self.scoped("cursor"), name);
        item.insert("value".into(), s(ts(&value)));
        // Cursors only move forward: an overlapping older run cannot move one back. A failed condition means
        // another run already went further, which is fine.
        self.put(
            item,
            Some((
                "attribute_not_exists(pk) OR #v <= :v",
                vec![("#v", s("value")), (":v", s(ts(&value)))],
            )),
        )
        .await
        .map(|_| ())
    }

    async fn seen_records(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let prefix = self.scoped("rec#");
        let unique: HashSet<&String> = ids.iter().collect();
        let items = self
            .batch_get(
                unique
                    .iter()
                    .map(|id| key(format!("{prefix}{id}"), "-"))
                    .collect(),
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "pk").and_then(|p| p.strip_prefix(&prefix)))
            .map(str::to_string)
            .collect())
    }

    async fn claim_records(
        &self,
        object_key: &str,
        ids: &[String],
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        use futures::StreamExt;
        // Records read again (each run re-reads the last hour; blobs are listed again) are most of what a steady run
        // meets: reading that they are claimed costs a fifth of a refused conditional write, so only the others are
        // claimed. The conditional writes still decide between racing runs.
        let seen = self.seen_records(ids).await?;
        let unique: Vec<String> = ids
            .iter()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        // The object's intent first: a crash after some claims leaves it for `unconfirmed_objects`.
        let mut marker = key(self.scoped("objpending"), object_key);
        marker.insert(
            "ids".into(),
            s(serde_json::to_string(&unique).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        );
        self.put(marker, None).await?;
        let prefix = self.scoped("rec#");
        let attempts: Vec<_> = unique
            .into_iter()
            .map(|id| {
                let mut item = key(format!("{prefix}{id}"), "-");
                item.insert("object".into(), s(object_key));
                async move {
                    let won = self
                        .put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                        .await?;
                    Ok::<_, StoreError>(won.then_some(id))
                }
            })
            .collect();
        let mut claims = futures::stream::iter(attempts).buffer_unordered(16);
        let mut claimed = Vec::new();
        while let Some(r) = claims.next().await {
            claimed.extend(r?);
        }
        Ok(claimed)
    }

    async fn confirm_object(&self, object_key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        use futures::StreamExt;
        let expires = n((now + Duration::days(INDEX_DAYS)).timestamp());
        let prefix = self.scoped("rec#");
        let confirms = self.pending_ids(object_key).await?.into_iter().map(|id| {
            let mut item = key(format!("{prefix}{id}"), "-");
            item.insert("object".into(), s(object_key));
            item.insert("expires_at".into(), expires.clone());
            // Only this object's own claims: an id claimed for another object stays as it is.
            self.put(
                item,
                Some((
                    "#obj = :k",
                    vec![("#obj", s("object")), (":k", s(object_key))],
                )),
            )
        });
        // As the claims: many in flight, not a round trip per record one after another.
        let mut confirms = futures::stream::iter(confirms).buffer_unordered(16);
        while let Some(done) = confirms.next().await {
            done?;
        }
        // The intent goes last: until every claim is confirmed, a crash leaves the object to settle.
        self.delete(&self.scoped("objpending"), object_key).await
    }

    async fn unconfirmed_objects(&self) -> Result<Vec<String>, StoreError> {
        let items = self.query(&self.scoped("objpending"), false, None).await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "sk").map(str::to_string))
            .collect())
    }

    async fn release_object(&self, object_key: &str) -> Result<(), StoreError> {
        for id in self.pending_ids(object_key).await? {
            // Only this object's unconfirmed claims.
            self.delete_if(
                &format!("{}{id}", self.scoped("rec#")),
                "-",
                "#obj = :k AND attribute_not_exists(expires_at)",
                &[("#obj", "object")],
                &[(":k", object_key)],
            )
            .await?;
        }
        self.delete(&self.scoped("objpending"), object_key).await
    }

    async fn mark_records(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let prefix = self.scoped("rec#");
        let expires = n((now + Duration::days(INDEX_DAYS)).timestamp());
        let unique: HashSet<&String> = ids.iter().collect();
        let items = unique
            .into_iter()
            .map(|id| {
                let mut i = key(format!("{prefix}{id}"), "-");
                i.insert("expires_at".into(), expires.clone());
                i
            })
            .collect();
        self.batch_put(items).await
    }

    async fn blob_done(&self, content_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(&self.scoped(&format!("blob#{content_id}")), "-")
            .await?
            .is_some())
    }

    async fn mark_blob(&self, content_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut i = key(self.scoped(&format!("blob#{content_id}")), "-");
        i.insert(
            "expires_at".into(),
            n((now + Duration::days(INDEX_DAYS)).timestamp()),
        );
        self.put(i, None).await.map(|_| ())
    }

    async fn expire_index(&self, _before: DateTime<Utc>) -> Result<(), StoreError> {
        // DynamoDB's TTL deletes index entries by their `expires_at`, set when they were written.
        Ok(())
    }

    async fn record_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        let item = with_doc(
            key(
                self.scoped("gap"),
                format!("{}#{}", gap.source, ts(&gap.from)),
            ),
            gap,
        )?;
        self.put(item, None).await.map(|_| ())
    }

    async fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let items = self.query(&self.scoped("gap"), false, None).await?;
        items.iter().map(doc).collect()
    }
}
