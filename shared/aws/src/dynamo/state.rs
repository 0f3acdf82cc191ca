//! Run records and snapshots (S3), history, grace cases and licence events (DynamoDB).

use super::*;
use crate::ports::store::SeatSample;

#[async_trait]
impl RunStore for DynamoStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let at = ts(&run.run_at);
        let object = format!("runs/{}/{at}.json.gz", run.tenant_id.to_ascii_lowercase());
        self.put_gz_object(&object, run).await?;
        let mut item = key(format!("{}#run", run.tenant_id.to_ascii_lowercase()), at);
        item.insert("object".into(), s(object));
        // The seat counts ride on the run's own item: a forecast reads them without the run objects.
        let seats = serde_json::to_string(&SeatSample::of_run(run))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.insert("seats".into(), s(seats));
        self.put(item, None).await.map(|_| ())
    }

    async fn seat_history(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<SeatSample>, StoreError> {
        let pk = format!("{}#run", tenant_id.to_ascii_lowercase());
        let since = ts(&since);
        let mut out = Vec::new();
        for item in self.query(&pk, false, None).await? {
            if attr_s(&item, "sk").is_none_or(|at| at < since.as_str()) {
                continue;
            }
            if let Some(seats) = attr_s(&item, "seats") {
                let samples: Vec<SeatSample> =
                    serde_json::from_str(seats).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.extend(samples);
            }
        }
        Ok(out)
    }

    async fn runs(&self, tenant_id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let items = self
            .query(
                &format!("{}#run", tenant_id.to_ascii_lowercase()),
                true,
                Some(limit),
            )
            .await?;
        let mut out = Vec::new();
        for item in items.iter().rev() {
            let Some(object) = attr_s(item, "object") else {
                continue;
            };
            if let Some(bytes) = self.objects.get_opt(object).await? {
                out.push(crate::ports::store::gunzip_json(&bytes)?);
            }
        }
        Ok(out)
    }

    async fn has_runs(&self, tenant_id: &str) -> Result<bool, StoreError> {
        let pk = format!("{}#run", tenant_id.to_ascii_lowercase());
        Ok(!self.query(&pk, true, Some(1)).await?.is_empty())
    }

    async fn previous_run(&self, tenant_id: &str) -> Result<Option<PreviousRun>, StoreError> {
        match self.newest_document(tenant_id, "snapshot").await? {
            Some(bytes) => crate::ports::store::decode_off_thread(
                bytes,
                crate::ports::snapshot_format::decode_previous,
            )
            .await
            .map(Some),
            None => Ok(None),
        }
    }

    async fn latest_snapshot(&self, tenant_id: &str) -> Result<Option<Snapshot>, StoreError> {
        match self.newest_document(tenant_id, "snapshot").await? {
            Some(bytes) => {
                crate::ports::store::decode_off_thread(bytes, crate::ports::snapshot_format::decode)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    async fn latest_snapshot_mark(
        &self,
        tenant_id: &str,
    ) -> Result<Option<crate::domain::snapshot::SnapshotMark>, StoreError> {
        self.newest_document(tenant_id, "snapshot")
            .await?
            .map(|bytes| crate::ports::snapshot_format::decode_mark(&bytes))
            .transpose()
    }

    async fn save_reclaim(&self, report: &ReclaimReport) -> Result<(), StoreError> {
        let bytes = crate::ports::store::gzip_json(report)?;
        self.save_document(
            &report.tenant_id,
            ("reclaim", "json.gz"),
            &report.generated_at,
            bytes,
        )
        .await
    }

    async fn latest_reclaim(&self, tenant_id: &str) -> Result<Option<ReclaimReport>, StoreError> {
        self.newest_document(tenant_id, "reclaim")
            .await?
            .map(|bytes| crate::ports::store::gunzip_json(&bytes))
            .transpose()
    }

    async fn save_encoded_snapshot(&self, snapshot: &EncodedSnapshot) -> Result<(), StoreError> {
        self.save_document(
            &snapshot.tenant_id,
            ("snapshot", "bin"),
            &snapshot.taken_at,
            snapshot.bytes.clone(),
        )
        .await
    }
}

#[async_trait]
impl HistoryStore for DynamoStore {
    async fn append_history(
        &self,
        tenant_id: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        // BatchWriteItem refuses two writes to one key in a call: key the items first.
        let mut items: HashMap<(String, String), Item> = HashMap::new();
        for e in entries {
            let pk = format!("{tenant}#history#{}", e.user_id.to_ascii_lowercase());
            // Keyed by identity, so a rerun of a run that died before its snapshot stores the same items again.
            let sk = e.identity();
            items.insert((pk.clone(), sk.clone()), with_doc(key(pk, sk), e)?);
            let upn = e.user_principal_name.to_ascii_lowercase();
            let mut map = key(format!("{tenant}#upn"), upn.clone());
            map.insert("user_id".into(), s(&e.user_id));
            items.insert((format!("{tenant}#upn"), upn), map);
        }
        self.batch_put(items.into_values().collect()).await
    }

    async fn history(&self, tenant_id: &str, user: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        let user_id = if user.contains('@') {
            match self
                .get(&format!("{tenant}#upn"), &user.to_ascii_lowercase())
                .await?
            {
                Some(i) => attr_s(&i, "user_id").unwrap_or_default().to_string(),
                None => return Ok(Vec::new()),
            }
        } else {
            user.to_string()
        };
        let items = self
            .query(
                &format!("{tenant}#history#{}", user_id.to_ascii_lowercase()),
                false,
                None,
            )
            .await?;
        let mut out: Vec<HistoryEntry> = items.iter().map(doc).collect::<Result<_, _>>()?;
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}

#[async_trait]
impl GraceStore for DynamoStore {
    async fn grace_cases(
        &self,
        tenant_id: &str,
        open_only: bool,
    ) -> Result<Vec<GraceCase>, StoreError> {
        let items = self.partition(tenant_id, "case").await?;
        let mut out = Vec::new();
        for i in &items {
            let c: GraceCase = doc(i)?;
            if !open_only || c.closed_at.is_none() {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn put_grace_cases(&self, cases: &[GraceCase]) -> Result<(), StoreError> {
        let items = cases
            .iter()
            .map(|c| {
                with_doc(
                    key(
                        format!("{}#case", c.tenant_id.to_ascii_lowercase()),
                        &c.case_id,
                    ),
                    c,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.transact_puts(items).await
    }
}

#[async_trait]
impl LicenseEventStore for DynamoStore {
    async fn license_events(
        &self,
        tenant_id: &str,
        user: Option<&str>,
    ) -> Result<Vec<LicenseEvent>, StoreError> {
        let items = self.partition(tenant_id, "event").await?;
        let mut out = Vec::new();
        for i in &items {
            let e: LicenseEvent = doc(i)?;
            let matches = user.is_none_or(|u| {
                e.user_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(u))
                    || e.user_principal_name
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(u))
            });
            if matches {
                let sk = attr_s(i, "sk").unwrap_or_default().to_string();
                out.push((e.at, sk, e));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out.into_iter().map(|(_, _, e)| e).collect())
    }

    async fn put_license_events(
        &self,
        tenant_id: &str,
        events: &[LicenseEvent],
    ) -> Result<usize, StoreError> {
        let pk = format!("{}#event", tenant_id.to_ascii_lowercase());
        let mut new = 0;
        for e in events {
            let item = with_doc(key(&pk, e.key()), e)?;
            if self
                .put(item.clone(), Some(("attribute_not_exists(pk)", Vec::new())))
                .await?
            {
                new += 1;
            } else {
                // Stored before: a later run may have completed the change, so the newer merge replaces it.
                self.put(item, None).await?;
            }
        }
        Ok(new)
    }

    async fn put_license_parts(
        &self,
        tenant_id: &str,
        parts: &[LicenseRecord],
    ) -> Result<(), StoreError> {
        use futures::StreamExt;
        let tenant = tenant_id.to_ascii_lowercase();
        let mut pairs = Vec::with_capacity(parts.len());
        for r in parts {
            let change = r.group_key();
            let mut marker = key(format!("{tenant}#lpending"), &change);
            marker.insert("marker".into(), s(uuid::Uuid::new_v4().to_string()));
            let item = with_doc(key(format!("{tenant}#lpart#{change}"), &r.id), r)?;
            pairs.push((marker, item));
        }
        let writes = pairs.into_iter().map(|(marker, item)| async move {
            // The marker goes first: a crash between the two writes leaves a pending change, never a stored record
            // that no run will merge.
            self.put(marker, None).await?;
            self.put(item, None).await.map(|_| ())
        });
        // Records one after another cost a round trip each; their pairs of writes are independent of each other.
        let mut writes = futures::stream::iter(writes).buffer_unordered(16);
        while let Some(done) = writes.next().await {
            done?;
        }
        Ok(())
    }

    async fn pending_license_parts(&self, tenant_id: &str) -> Result<PendingParts, StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        let mut out = PendingParts::default();
        for m in self.partition(tenant_id, "lpending").await? {
            let (Some(change), Some(marker)) = (attr_s(&m, "sk"), attr_s(&m, "marker")) else {
                continue;
            };
            for item in self
                .query(&format!("{tenant}#lpart#{change}"), false, None)
                .await?
            {
                out.records.push(doc(&item)?);
            }
            out.changes.push((change.to_string(), marker.to_string()));
        }
        Ok(out)
    }

    async fn settle_license_parts(
        &self,
        tenant_id: &str,
        changes: &[(String, String)],
    ) -> Result<(), StoreError> {
        let pk = format!("{}#lpending", tenant_id.to_ascii_lowercase());
        for (change, marker) in changes {
            // Made pending again by a concurrent run (another marker): that run, or the next, merges it.
            self.delete_if(&pk, change, "marker = :m", &[], &[(":m", marker)])
                .await?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// Stores a document of `kind` (`snapshot`: binary, `reclaim`: gzip JSON) as an S3 object named with `extension`, then the table's pointer to
    /// it: a crash in between leaves an unreferenced object, never a pointer to nothing.
    async fn save_document(
        &self,
        tenant_id: &str,
        (kind, extension): (&str, &str),
        at: &DateTime<Utc>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let tenant = tenant_id.to_ascii_lowercase();
        let at = ts(at);
        let object = format!("{kind}s/{tenant}/{at}.{extension}");
        self.objects.put_if_absent(&object, bytes).await?;
        let mut item = key(format!("{tenant}#{kind}"), at);
        item.insert("object".into(), s(object));
        self.put(item, None).await.map(|_| ())
    }

    /// The newest stored document of `kind`, from the object the table names.
    async fn newest_document(
        &self,
        tenant_id: &str,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let items = self
            .query(
                &format!("{}#{kind}", tenant_id.to_ascii_lowercase()),
                true,
                Some(1),
            )
            .await?;
        let Some(object) = items.first().and_then(|i| attr_s(i, "object")) else {
            return Ok(None);
        };
        match self.objects.get_opt(object).await? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(StoreError::Corrupt(format!(
                "{kind} object '{object}' named by the table is missing"
            ))),
        }
    }
}

#[async_trait]
impl crate::ports::store::SubscriptionStore for DynamoStore {
    async fn subscription(
        &self,
        tenant_id: &str,
    ) -> Result<Option<crate::ports::store::SubscriptionRecord>, StoreError> {
        let pk = format!("{}#subscription", tenant_id.to_ascii_lowercase());
        let Some(item) = self.get(&pk, "-").await? else {
            return Ok(None);
        };
        let body = attr_s(&item, "body").unwrap_or_default();
        serde_json::from_str(body)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("subscription of '{tenant_id}': {e}")))
    }

    async fn save_subscription(
        &self,
        record: &crate::ports::store::SubscriptionRecord,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(record)
            .map_err(|e| StoreError::Corrupt(format!("subscription: {e}")))?;
        let mut item = key(
            format!("{}#subscription", record.tenant_id.to_ascii_lowercase()),
            "-",
        );
        item.insert("body".into(), s(body));
        self.put(item, None).await.map(|_| ())
    }
}

#[async_trait]
impl crate::ports::store::JobStatusStore for DynamoStore {
    async fn job_statuses(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<crate::domain::tenant_status::JobStatus>, StoreError> {
        let pk = format!("{}#job", tenant_id.to_ascii_lowercase());
        let mut out = Vec::new();
        for item in self.query(&pk, false, None).await? {
            let body = attr_s(&item, "body").unwrap_or_default();
            out.push(
                serde_json::from_str(body).map_err(|e| {
                    StoreError::Corrupt(format!("job status of '{tenant_id}': {e}"))
                })?,
            );
        }
        Ok(out)
    }

    async fn put_job_status(
        &self,
        tenant_id: &str,
        status: &crate::domain::tenant_status::JobStatus,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(status)
            .map_err(|e| StoreError::Corrupt(format!("job status: {e}")))?;
        let mut item = key(
            format!("{}#job", tenant_id.to_ascii_lowercase()),
            status.job.as_str(),
        );
        item.insert("body".into(), s(body));
        self.put(item, None).await.map(|_| ())
    }
}

#[async_trait]
impl crate::ports::store::MailboxPurposeStore for DynamoStore {
    async fn mailbox_purposes(
        &self,
        tenant_id: &str,
        user_ids: &[String],
    ) -> Result<
        HashMap<String, (Option<crate::domain::kinds::MailboxPurpose>, DateTime<Utc>)>,
        StoreError,
    > {
        let pk = format!("{}#purpose", tenant_id.to_ascii_lowercase());
        let items = self
            .batch_get(user_ids.iter().map(|id| key(pk.clone(), id)).collect())
            .await?;
        let mut out = HashMap::new();
        for item in &items {
            let (Some(id), Some(body)) = (attr_s(item, "sk"), attr_s(item, "body")) else {
                continue;
            };
            let r: crate::ports::store::PurposeRecord =
                serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.insert(id.to_string(), (r.purpose, r.read_at));
        }
        Ok(out)
    }

    async fn put_mailbox_purposes(
        &self,
        tenant_id: &str,
        read: &[(String, Option<crate::domain::kinds::MailboxPurpose>)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let pk = format!("{}#purpose", tenant_id.to_ascii_lowercase());
        let mut items = Vec::new();
        for (id, purpose) in read {
            let body = serde_json::to_string(&crate::ports::store::PurposeRecord {
                purpose: *purpose,
                read_at: at,
            })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut item = key(pk.clone(), id);
            item.insert("body".into(), s(body));
            items.push(item);
        }
        self.batch_put(items).await
    }
}
