//! What a few users' mailboxes are for (`mailboxSettings/userPurpose`): shared, room and equipment mailboxes need no
//! licence, whatever their account's state. license-check asks for the users without an enabled Exchange plan (the
//! would-be grace cases), reclaim for the licensed users nobody signs in as; each is read about once a day (the store
//! keeps what was read), eight users at a time and never more than Outlook's four per mailbox. Without
//! `MailboxSettings.Read` the caller says so and keeps its account-state rule.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use crate::domain::kinds::MailboxPurpose;
use crate::error::{ApiError, CoreError};
use crate::ports::directory::Directory;
use crate::ports::store::StateStore;

/// How long a purpose read is trusted: a mailbox converted to shared is seen the next day.
const FRESH_FOR_HOURS: i64 = 24;

/// The purposes known for this run's candidates.
#[derive(Debug, Default)]
pub(crate) struct Purposes {
    /// User id → purpose (users without a mailbox or with an unknown purpose are absent).
    pub by_user: HashMap<String, MailboxPurpose>,
    /// Why purposes could not be read, when they could not (the report says it).
    pub unavailable: Option<String>,
}

impl Purposes {
    /// The purpose that keeps `user_id` out of the grace rules, if any.
    pub(crate) fn needing_no_licence(&self, user_id: &str) -> Option<MailboxPurpose> {
        self.by_user
            .get(user_id)
            .copied()
            .filter(|p| !crate::domain::grace::needs_a_licence(*p))
    }
}

/// Reads (or recalls) the purposes of `candidates`' mailboxes.
pub(crate) async fn of_candidates(
    graph: &dyn Directory,
    store: &dyn StateStore,
    tenant_id: &str,
    candidates: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Purposes, CoreError> {
    let mut out = Purposes::default();
    if candidates.is_empty() {
        return Ok(out);
    }
    let known = store.mailbox_purposes(tenant_id, &candidates).await?;
    let fresh = |at: &DateTime<Utc>| now - *at < Duration::hours(FRESH_FOR_HOURS);
    let stale: Vec<String> = candidates
        .iter()
        .filter(|id| !known.get(*id).is_some_and(|(_, at)| fresh(at)))
        .cloned()
        .collect();
    for (id, (purpose, at)) in &known {
        if let (Some(p), true) = (purpose, fresh(at)) {
            out.by_user.insert(id.clone(), *p);
        }
    }
    let read: Vec<(String, Result<Option<MailboxPurpose>, ApiError>)> =
        futures::stream::iter(stale)
            .map(|id| async move {
                let r = graph.mailbox_purpose(&id).await;
                (id, r)
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let mut to_keep = Vec::new();
    for (id, result) in read {
        match result {
            Ok(purpose) => {
                if let Some(p) = purpose {
                    out.by_user.insert(id.clone(), p);
                }
                to_keep.push((id, purpose));
            }
            Err(e) => {
                out.unavailable.get_or_insert_with(|| unavailable(&e));
            }
        }
    }
    store.put_mailbox_purposes(tenant_id, &to_keep, now).await?;
    if let Some(why) = &out.unavailable {
        tracing::warn!(tenant = tenant_id, "mailbox purposes: {why}");
    }
    Ok(out)
}

fn unavailable(e: &ApiError) -> String {
    match e {
        ApiError::Forbidden { .. } => "MailboxSettings.Read is not granted: shared, room and equipment mailboxes are told apart by their disabled account only (grant it to tell them by userPurpose)".into(),
        other => format!("not read this run ({other}); the next run tries again"),
    }
}
