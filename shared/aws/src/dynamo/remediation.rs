//! Remediation records, the rolling action budget, seen webhook ids and the remediation queue (SQS, or the table).

use super::*;

#[async_trait]
impl RemediationQueue for DynamoStore {
    async fn enqueue(&self, request: &RemediationRequest) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match &self.queue {
            Some(q) => q.send(&body).await,
            None => {
                let item = with_doc(
                    key(
                        format!("{}#queue", request.tenant_id.to_ascii_lowercase()),
                        &request.remediation_id,
                    ),
                    request,
                )?;
                self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn pending(&self, tenant_id: &str) -> Result<Vec<RemediationRequest>, StoreError> {
        if self.queue.is_some() {
            // SQS delivers to the reprocess-user function; nothing waits here.
            return Ok(Vec::new());
        }
        let items = self.partition(tenant_id, "queue").await?;
        items.iter().map(doc).collect()
    }

    async fn ack(&self, remediation_id: &str) -> Result<(), StoreError> {
        if self.queue.is_some() {
            return Ok(());
        }
        // The queue item's partition needs the tenant: read it from the remediation record, else from the request.
        let tenant = match self.remediation(remediation_id).await? {
            Some(r) => r.request.tenant_id,
            None => self.scope.clone(),
        };
        self.delete(
            &format!("{}#queue", tenant.to_ascii_lowercase()),
            remediation_id,
        )
        .await
    }
}

/// The partition listing a tenant's pending remediations.
fn pending_listing(tenant_id: &str) -> String {
    format!("{}#pending", tenant_id.to_ascii_lowercase())
}

/// Admission (DynamoDB) and queueing (SQS, or the table) are writes of their own: the default. With SQS, whose
/// messages cannot be looked up, the remediation item records the queueing.
#[async_trait]
impl RemediationIntake for DynamoStore {
    async fn mark_queued(&self, remediation_id: &str) -> Result<(), StoreError> {
        if self.queue.is_none() {
            return Ok(());
        }
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("remediation#{remediation_id}"), "-")))
            .update_expression("SET queued = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb UpdateItem", e))?;
        Ok(())
    }

    async fn is_queued(&self, remediation_id: &str) -> Result<bool, StoreError> {
        let pk = format!("remediation#{remediation_id}");
        if self.queue.is_some() {
            let item = self.get(&pk, "-").await?;
            return Ok(
                item.and_then(|i| i.get("queued").cloned()) == Some(AttributeValue::Bool(true))
            );
        }
        let Some(record) = self.remediation(remediation_id).await? else {
            return Ok(false);
        };
        let partition = format!("{}#queue", record.request.tenant_id.to_ascii_lowercase());
        Ok(self.get(&partition, remediation_id).await?.is_some())
    }
}

#[async_trait]
impl RemediationStore for DynamoStore {
    async fn claim(&self, record: &RemediationRecord) -> Result<Claim, StoreError> {
        let Some(ticket) = &record.ticket_key else {
            let put = self.new_remediation_put(record, None)?;
            self.transact(
                vec![TransactWriteItem::builder().put(put).build()],
                &token(&record.request.remediation_id),
            )
            .await?;
            return Ok(Claim::New);
        };
        let writes = vec![
            TransactWriteItem::builder()
                .put(self.ticket_put(record, ticket)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.new_remediation_put(record, None)?)
                .build(),
        ];
        if self
            .transact(writes, &token(&record.request.remediation_id))
            .await?
        {
            return Ok(Claim::New);
        }
        match self
            .first_ticket(ticket, record.created_at - Duration::hours(24))
            .await?
        {
            // Our own earlier attempt committed (its answer was lost): this is still the new record.
            Some(first) if first.request.remediation_id == record.request.remediation_id => {
                Ok(Claim::New)
            }
            Some(first) => Ok(Claim::Existing(Box::new(first))),
            None => Err(StoreError::Busy(
                "remediation claim lost a race; retry".into(),
            )),
        }
    }

    async fn remember_webhook(
        &self,
        webhook_key: &str,
        remediation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let pk = format!("webhook#{webhook_key}");
        let mut item = key(&pk, "-");
        item.insert("remediation_id".into(), s(remediation_id));
        item.insert(
            "expires_at".into(),
            n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
        );
        if self
            .put(item, Some(("attribute_not_exists(pk)", Vec::new())))
            .await?
        {
            return Ok(None);
        }
        Ok(self
            .get(&pk, "-")
            .await?
            .and_then(|i| attr_s(&i, "remediation_id").map(str::to_string)))
    }

    async fn remediation(
        &self,
        remediation_id: &str,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        match self
            .get(&format!("remediation#{remediation_id}"), "-")
            .await?
        {
            Some(i) => doc(&i).map(Some),
            None => Ok(None),
        }
    }

    async fn set_status(
        &self,
        remediation_id: &str,
        status: RemediationStatus,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(item) = self
            .get(&format!("remediation#{remediation_id}"), "-")
            .await?
        else {
            return Err(StoreError::Database(format!(
                "no remediation {remediation_id}"
            )));
        };
        let mut rec: RemediationRecord = doc(&item)?;
        let was_pending = rec.status == RemediationStatus::Pending;
        rec.status = status;
        rec.detail = detail.clone();
        rec.updated_at = now;
        let mut updated = with_doc(item, &rec)?;
        updated.insert("status".into(), s(status.as_str()));
        // A pending remediation is also listed under its tenant, so the runs that confirm it find it without a
        // scan: listed before the record says pending, unlisted after it says anything else (a crash in between
        // leaves a listing whose record is read and skipped, never a pending record nobody confirms).
        let listing = pending_listing(&rec.request.tenant_id);
        if status == RemediationStatus::Pending {
            self.put(key(&listing, remediation_id), None).await?;
        }
        self.put(updated, None).await?;
        if was_pending && status != RemediationStatus::Pending {
            self.delete(&listing, remediation_id).await?;
        }
        Ok(())
    }

    async fn pending_verification(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<RemediationRecord>, StoreError> {
        let mut out = Vec::new();
        for listed in self.partition(tenant_id, "pending").await? {
            let Some(id) = attr_s(&listed, "sk") else {
                continue;
            };
            // The record decides: a listing left by a crash after the status moved on is removed.
            match self.remediation(id).await? {
                Some(rec) if rec.status == RemediationStatus::Pending => out.push(rec),
                _ => self.delete(&pending_listing(tenant_id), id).await?,
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    async fn forget(&self, remediation_id: &str) -> Result<(), StoreError> {
        let pk = format!("remediation#{remediation_id}");
        if let Some(item) = self.get(&pk, "-").await? {
            if let Some(w) = attr_s(&item, "webhook_key") {
                self.delete(&format!("webhook#{w}"), "-").await?;
            }
            if let Some(t) = attr_s(&item, "ticket_key") {
                let ticket = self.get(&format!("ticket#{t}"), "-").await?;
                if ticket.as_ref().and_then(|i| attr_s(i, "remediation_id")) == Some(remediation_id)
                {
                    self.delete(&format!("ticket#{t}"), "-").await?;
                }
            }
        }
        self.delete(&pk, "-").await
    }

    async fn admit(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Admitted, StoreError> {
        // The budget item holds the admission times of the last 60 minutes and a version: each admission rewrites
        // it conditioned on the version it read, in the same transaction as the webhook id, ticket and record.
        // Losing that race only means reading the window again.
        for _ in 0..8 {
            match self.admit_once(webhook_key, record, max_per_hour).await? {
                Some(outcome) => return Ok(outcome),
                None => continue,
            }
        }
        Err(StoreError::Busy(
            "remediation admission lost too many races for the action budget; retry".into(),
        ))
    }
}

impl DynamoStore {
    /// One admission attempt; `None` when the budget window changed under it (try again).
    pub(super) async fn admit_once(
        &self,
        webhook_key: Option<&str>,
        record: &RemediationRecord,
        max_per_hour: u32,
    ) -> Result<Option<Admitted>, StoreError> {
        let now = record.created_at;
        let tenant = record.request.tenant_id.to_ascii_lowercase();
        let budget_key = key(format!("{tenant}#budget"), "rolling");
        let current = self.get(&format!("{tenant}#budget"), "rolling").await?;
        let version = current
            .as_ref()
            .and_then(|i| i.get("version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse::<i64>().ok());
        let window_start = ts(&(now - Duration::minutes(60)));
        let mut stamps: Vec<String> = current
            .as_ref()
            .and_then(|i| attr_s(i, "stamps"))
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| *t > window_start)
            .collect();
        let over = stamps.len() >= max_per_hour as usize;
        let mut writes = Vec::new();
        if let Some(w) = webhook_key {
            let mut item = key(format!("webhook#{w}"), "-");
            item.insert("remediation_id".into(), s(&record.request.remediation_id));
            item.insert(
                "expires_at".into(),
                n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
            );
            let put = build(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some(t) = &record.ticket_key {
            writes.push(
                TransactWriteItem::builder()
                    .put(self.ticket_put(record, t)?)
                    .build(),
            );
        }
        stamps.push(ts(&now));
        let mut budget = budget_key.clone();
        budget.insert(
            "stamps".into(),
            s(serde_json::to_string(&stamps).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        );
        budget.insert("version".into(), n(version.unwrap_or(0) + 1));
        budget.insert(
            "expires_at".into(),
            n((now + Duration::days(2)).timestamp()),
        );
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(budget));
        put = match version {
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(v)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        writes.push(
            TransactWriteItem::builder()
                .put(build(put.build())?)
                .build(),
        );
        writes.push(
            TransactWriteItem::builder()
                .put(self.new_remediation_put(record, webhook_key)?)
                .build(),
        );
        let own = record.request.remediation_id.as_str();
        if !over {
            // One token per window version: a retry after a lost answer repeats the same items.
            let attempt = format!("{own}#{}", version.unwrap_or(0));
            match self.transact(writes, &token(&attempt)).await {
                Ok(true) => return Ok(Some(Admitted::New)),
                Ok(false) => {}
                // Another admission's transaction overlapped ours: read the window again.
                Err(StoreError::Busy(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        // Held back (or over budget): a replayed webhook and a repeated ticket answer first, in the contract's order.
        // An item naming our own remediation means an earlier attempt of this very call committed.
        if let Some(w) = webhook_key
            && let Some(item) = self.get(&format!("webhook#{w}"), "-").await?
        {
            let id = attr_s(&item, "remediation_id").unwrap_or_default();
            if id == own {
                return Ok(Some(Admitted::New));
            }
            return Ok(Some(Admitted::ReplayedWebhook(id.to_string())));
        }
        if let Some(t) = &record.ticket_key
            && let Some(first) = self.first_ticket(t, now - Duration::hours(24)).await?
        {
            if first.request.remediation_id == own {
                return Ok(Some(Admitted::New));
            }
            return Ok(Some(Admitted::SameTicket(Box::new(first))));
        }
        if over {
            return Ok(Some(Admitted::OverBudget));
        }
        Ok(None)
    }
}

/// Remediation items and their ticket keys.
impl DynamoStore {
    pub(super) async fn first_ticket(
        &self,
        ticket_key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<RemediationRecord>, StoreError> {
        let Some(item) = self.get(&format!("ticket#{ticket_key}"), "-").await? else {
            return Ok(None);
        };
        let created = attr_s(&item, "created_at").unwrap_or_default();
        if created <= ts(&since).as_str() {
            return Ok(None);
        }
        let Some(id) = attr_s(&item, "remediation_id") else {
            return Ok(None);
        };
        self.remediation(id).await
    }

    pub(super) fn ticket_put(
        &self,
        record: &RemediationRecord,
        ticket: &str,
    ) -> Result<Put, StoreError> {
        let now = record.created_at;
        let mut item = key(format!("ticket#{ticket}"), "-");
        item.insert("remediation_id".into(), s(&record.request.remediation_id));
        item.insert("created_at".into(), s(ts(&now)));
        item.insert(
            "expires_at".into(),
            n((now + Duration::days(IDEMPOTENCY_DAYS)).timestamp()),
        );
        build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                // A ticket key older than 24 h may be claimed again.
                .condition_expression("attribute_not_exists(pk) OR created_at <= :since")
                .expression_attribute_values(":since", s(ts(&(now - Duration::hours(24)))))
                .build(),
        )
    }

    pub(super) fn remediation_item(
        &self,
        record: &RemediationRecord,
        webhook_key: Option<&str>,
    ) -> Result<Item, StoreError> {
        let mut item = with_doc(
            key(
                format!("remediation#{}", record.request.remediation_id),
                "-",
            ),
            record,
        )?;
        item.insert("tenant_id".into(), s(&record.request.tenant_id));
        if let Some(k) = &record.ticket_key {
            item.insert("ticket_key".into(), s(k));
        }
        if let Some(w) = webhook_key {
            item.insert("webhook_key".into(), s(w));
        }
        Ok(item)
    }

    pub(super) fn new_remediation_put(
        &self,
        record: &RemediationRecord,
        webhook_key: Option<&str>,
    ) -> Result<Put, StoreError> {
        build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.remediation_item(record, webhook_key)?))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )
    }
}
