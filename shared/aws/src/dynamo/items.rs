//! The DynamoDB operations the store is built from: single items, conditional writes, queries, batches and
//! transactions, each retried or mapped to a `StoreError` that knows whether a retry can help.

use super::*;

impl DynamoStore {
    /// Puts an item; with a condition, returns false when the condition failed.
    pub(super) async fn put(
        &self,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if let Some((expr, values)) = condition {
            req = req.condition_expression(expr);
            for (k, v) in values {
                if k.starts_with('#') {
                    if let AttributeValue::S(name) = v {
                        req = req.expression_attribute_names(k, name);
                    }
                } else {
                    req = req.expression_attribute_values(k, v);
                }
            }
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e).as_deref() == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(e) => Err(sdk_error("dynamodb PutItem", e)),
        }
    }

    pub(super) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb GetItem", e))?;
        Ok(out.item)
    }

    pub(super) async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb DeleteItem", e))?;
        Ok(())
    }

    /// Deletes an item only when `condition` holds (its `#name`s mapping to attribute names, its `:value`s to strings);
    /// a failed condition is no error: the item belongs to someone else now.
    pub(super) async fn delete_if(
        &self,
        pk: &str,
        sk: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let mut req = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression(condition);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(*k, s(*v));
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e).as_deref() == Some("ConditionalCheckFailedException") => {
                Ok(())
            }
            Err(e) => Err(sdk_error("dynamodb DeleteItem", e)),
        }
    }

    /// Every item of a partition, in sort-key order (newest first when `descending`), at most `limit`.
    pub(super) async fn query(
        &self,
        pk: &str,
        descending: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .scan_index_forward(!descending)
                .consistent_read(true)
                .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb Query", e))?;
            out.extend(page.items.unwrap_or_default());
            if limit.is_some_and(|l| out.len() >= l) {
                out.truncate(limit.unwrap_or(usize::MAX));
                break;
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Reads many keys, 100 per call, retrying the ones DynamoDB leaves unprocessed.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = build(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build(),
            )?;
            for attempt in 0..8u32 {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("dynamodb BatchGetItem", e))?;
                if let Some(mut r) = out.responses {
                    found.extend(r.remove(&self.table).unwrap_or_default());
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        pending = rest;
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => break,
                }
                if attempt == 7 {
                    return Err(StoreError::Busy(
                        "dynamodb BatchGetItem: keys left unprocessed after 8 attempts".into(),
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Writes many items, 25 per call, retrying the ones DynamoDB leaves unprocessed.
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(25) {
            let mut pending = chunk
                .iter()
                .map(|i| {
                    build(PutRequest::builder().set_item(Some(i.clone())).build())
                        .map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<Vec<_>, _>>()?;
            for attempt in 0..8u32 {
                let out = self
                    .db
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("dynamodb BatchWriteItem", e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.is_empty() => {
                        pending = rest;
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => break,
                }
                if attempt == 7 {
                    return Err(StoreError::Busy(
                        "dynamodb BatchWriteItem: items left unprocessed after 8 attempts".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn put_item(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes items in transactions of up to 100: each chunk all or none. Every item is a full replacement, so a
    /// retry after a failure between chunks converges.
    pub(super) async fn transact_puts(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(100) {
            let writes = chunk
                .iter()
                .map(|i| self.put_item(i.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            self.db
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb TransactWriteItems", e))?;
        }
        Ok(())
    }

    pub(super) async fn put_gz_object<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        // Names carry the run time, so an existing object is this run's own earlier attempt.
        self.objects
            .put_if_absent(key, crate::ports::store::gzip_json(value)?)
            .await
            .map(|_| ())
    }

    /// Runs a transaction; false when a condition failed. `token` makes the SDK's own retries idempotent: a retry
    /// of a transaction that did commit is answered as a success instead of failing its conditions.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
    ) -> Result<bool, StoreError> {
        match self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if error_code(&e).as_deref() == Some("TransactionCanceledException") => {
                let conflict = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t),
                    ) => t
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict")),
                    _ => false,
                };
                if conflict {
                    Err(StoreError::Busy(
                        "dynamodb: a concurrent transaction touched the same items".into(),
                    ))
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(sdk_error("dynamodb TransactWriteItems", e)),
        }
    }

    /// Every item of a tenant's partition `{tenant}#{what}`, in sort-key order.
    pub(super) async fn partition(
        &self,
        tenant_id: &str,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.query(
            &format!("{}#{what}", tenant_id.to_ascii_lowercase()),
            false,
            None,
        )
        .await
    }

    /// The ids an unconfirmed archive object claimed (from its intent marker).
    pub(super) async fn pending_ids(&self, object_key: &str) -> Result<Vec<String>, StoreError> {
        let Some(marker) = self.get(&self.scoped("objpending"), object_key).await? else {
            return Ok(Vec::new());
        };
        serde_json::from_str(attr_s(&marker, "ids").unwrap_or("[]"))
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub(super) fn scoped(&self, what: &str) -> String {
        format!("{}#{what}", self.scope)
    }
}
