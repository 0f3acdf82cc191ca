//! The notice ledger, alerts and leases in DynamoDB, each claim a conditional write.

use super::*;

#[async_trait]
impl NoticeLedger for DynamoStore {
    async fn ledger_status(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerStatus>, StoreError> {
        let wanted: HashSet<&String> = keys.iter().collect();
        let items = self
            .batch_get(
                wanted
                    .iter()
                    .map(|k| key(format!("ledger#{k}"), "-"))
                    .collect(),
            )
            .await?;
        let mut out = HashMap::new();
        for i in &items {
            let k = attr_s(i, "pk")
                .and_then(|p| p.strip_prefix("ledger#"))
                .unwrap_or_default()
                .to_string();
            let status = if attr_s(i, "status") == Some("sent") {
                LedgerStatus::Sent
            } else {
                LedgerStatus::Intended
            };
            out.insert(k, status);
        }
        Ok(out)
    }

    async fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.get(&format!("ledger#{key}"), "-")
            .await?
            .map(|item| doc(&item))
            .transpose()
    }

    async fn ledger_put(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        for e in entries {
            let mut item = with_doc(key(format!("ledger#{}", e.key), "-"), e)?;
            let sent = e.status == LedgerStatus::Sent;
            item.insert(
                "status".into(),
                s(match e.status {
                    LedgerStatus::Sent => "sent",
                    LedgerStatus::Sending => "sending",
                    LedgerStatus::Intended => "intended",
                }),
            );
            if sent {
                self.put(item, None).await?;
                if e.audience == Audience::Admin {
                    let tenant = e.tenant_id.to_ascii_lowercase();
                    self.put(key(format!("{tenant}#notified"), &e.case_id), None)
                        .await?;
                }
            } else {
                // Never take a sent notice back to intended (a slow, older run must not cause a resend).
                self.put(
                    item,
                    Some((
                        "attribute_not_exists(pk) OR #st <> :sent",
                        vec![("#st", s("status")), (":sent", s("sent"))],
                    )),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn notified_cases(&self, tenant_id: &str) -> Result<HashSet<String>, StoreError> {
        let items = self.partition(tenant_id, "notified").await?;
        Ok(items
            .iter()
            .filter_map(|i| attr_s(i, "sk").map(str::to_string))
            .collect())
    }

    async fn ledger_claim(
        &self,
        entries: &[LedgerEntry],
        abandoned_up_to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut claimed = Vec::new();
        for e in entries {
            let owner = e.claimed_by.clone().unwrap_or_default();
            let mut item = with_doc(key(format!("ledger#{}", e.key), "-"), e)?;
            item.insert("status".into(), s("sending"));
            item.insert("claimed_by".into(), s(&owner));
            item.insert("claimed_at".into(), s(ts(&e.updated_at)));
            let won = self
                .put(
                    item,
                    Some((
                        "attribute_not_exists(pk) OR (#st <> :sent AND (#st = :intended OR #by = :me OR #at <= :stale))",
                        vec![
                            ("#st", s("status")),
                            ("#by", s("claimed_by")),
                            ("#at", s("claimed_at")),
                            (":sent", s("sent")),
                            (":intended", s("intended")),
                            (":me", s(&owner)),
                            (":stale", s(ts(&abandoned_up_to))),
                        ],
                    )),
                )
                .await?;
            if won {
                claimed.push(e.key.clone());
            }
        }
        Ok(claimed)
    }
}

#[async_trait]
impl AlertStore for DynamoStore {
    async fn sync_alerts(
        &self,
        tenant_id: &str,
        current: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        let pk = format!("{}#alert", tenant_id.to_ascii_lowercase());
        let open = self.open_alerts(tenant_id).await?;
        for a in &open {
            if !current.iter().any(|c| c.condition == a.condition) {
                let mut item = with_doc(key(&pk, &a.alert_id), a)?;
                item.insert("open".into(), AttributeValue::Bool(false));
                self.put(item, None).await?;
            }
        }
        for c in current {
            if !open.iter().any(|a| a.condition == c.condition) {
                let mut item = with_doc(key(&pk, &c.alert_id), c)?;
                item.insert("open".into(), AttributeValue::Bool(true));
                // Two runs racing open the occurrence once.
                self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
                    .await?;
            }
        }
        self.open_alerts(tenant_id).await
    }

    async fn open_alerts(&self, tenant_id: &str) -> Result<Vec<Alert>, StoreError> {
        let items = self.partition(tenant_id, "alert").await?;
        items
            .iter()
            .filter(|i| matches!(i.get("open"), Some(AttributeValue::Bool(true))))
            .map(doc)
            .collect()
    }

    async fn raise_alert(&self, tenant_id: &str, alert: &Alert) -> Result<(), StoreError> {
        let mut item = with_doc(
            key(
                format!("{}#alert", tenant_id.to_ascii_lowercase()),
                &alert.alert_id,
            ),
            alert,
        )?;
        item.insert("open".into(), AttributeValue::Bool(false));
        self.put(item, Some(("attribute_not_exists(pk)", Vec::new())))
            .await
            .map(|_| ())
    }

    async fn recent_alerts(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Alert>, StoreError> {
        let items = self.partition(tenant_id, "alert").await?;
        let mut out = Vec::new();
        for i in &items {
            let a: Alert = doc(i)?;
            if a.raised_at >= since {
                out.push(a);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let pk = format!("lease#{name}");
        let mut item = key(&pk, "-");
        item.insert("owner".into(), s(owner));
        item.insert("until".into(), s(ts(&(now + ttl))));
        // Expired leases are cleaned up by TTL too, a day after they end.
        item.insert(
            "expires_at".into(),
            n((now + ttl + Duration::days(1)).timestamp()),
        );
        let free = self
            .put(
                item,
                Some((
                    "attribute_not_exists(pk) OR #o = :me OR #u < :now",
                    vec![
                        ("#o", s("owner")),
                        ("#u", s("until")),
                        (":me", s(owner)),
                        (":now", s(ts(&now))),
                    ],
                )),
            )
            .await?;
        if free {
            return Ok(Lease::Acquired);
        }
        let held = self.get(&pk, "-").await?;
        let holder = held.as_ref().and_then(|i| attr_s(i, "owner")).unwrap_or("");
        let until = held
            .as_ref()
            .and_then(|i| attr_s(i, "until"))
            .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
            .map_or(now + ttl, |u| u.to_utc());
        Ok(Lease::Held {
            owner: holder.to_string(),
            until,
        })
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        // Only its owner releases it: a lease taken over after it expired is not ours.
        self.delete_if(
            &format!("lease#{name}"),
            "-",
            "#o = :me",
            &[("#o", "owner")],
            &[(":me", owner)],
        )
        .await
    }
}
