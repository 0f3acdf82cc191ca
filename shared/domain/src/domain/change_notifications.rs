//! Microsoft Graph change notifications on `/users`: what a POST to the notification endpoint carries, which of its
//! items are ours (the subscription's `clientState`, compared in constant time), and when a subscription must be
//! created or renewed.
//!
//! A batch is `{"value": [...]}`; each item is either a change notification (`changeType` `created` | `updated` |
//! `deleted`, `resource` `Users/{id}`, `resourceData.id`) or a lifecycle notification (`lifecycleEvent` `missed` |
//! `reauthorizationRequired` | `subscriptionRemoved`), both with `subscriptionId`, `tenantId` and `clientState`.
//! Notifications carry no resource data: they only say which user to read again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::secret::SecretString;

/// Graph's longest lifetime for a subscription on users (29 days), in minutes.
pub(crate) const USERS_MAX_MINUTES: i64 = 41_760;
/// A subscription is renewed once less than this is left, so that a daily renewal run that fails still has two
/// more chances before notifications stop.
pub const RENEW_WHEN_LEFT: Duration = Duration::days(3);
/// The resource licensewatch subscribes to.
pub const RESOURCE: &str = "/users";
/// The change types it asks for: a licence removal is an update; a deleted user loses every licence.
pub const CHANGE_TYPES: &str = "updated,deleted";

/// What changed about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    /// A new user.
    Created,
    /// A property changed (licences among them).
    Updated,
    /// The user was deleted.
    Deleted,
}

/// A lifecycle notification's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// Graph could not deliver some notifications: read what changed another way.
    Missed,
    /// The subscription's authorisation is about to expire: reauthorise it.
    ReauthorizationRequired,
    /// Graph removed the subscription: create a new one.
    SubscriptionRemoved,
}

/// One notification that passed the `clientState` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// A user changed.
    Change {
        /// The subscription it came through.
        subscription_id: String,
        /// The tenant.
        tenant_id: String,
        /// What happened.
        change: ChangeType,
        /// The user's object id.
        user_id: String,
    },
    /// licensewatch's own follow-up, never Graph's: read this user once more, because the read after its
    /// notification did not differ from the last snapshot (Graph may notify before every replica has the change).
    Reread {
        /// The tenant.
        tenant_id: String,
        /// The user's object id.
        user_id: String,
    },
    /// Something happened to the subscription.
    Lifecycle {
        /// The subscription.
        subscription_id: String,
        /// The tenant.
        tenant_id: String,
        /// What happened.
        event: LifecycleEvent,
    },
}

impl Notification {
    /// The tenant it concerns.
    pub fn tenant_id(&self) -> &str {
        match self {
            Notification::Change { tenant_id, .. }
            | Notification::Reread { tenant_id, .. }
            | Notification::Lifecycle { tenant_id, .. } => tenant_id,
        }
    }
}

/// Why a request body is not a notification batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(String);

/// A batch sorted: the notifications that carry our `clientState`, and how many did not (forged, stale or
/// malformed items: counted and never acted on).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sorted {
    /// Ours.
    pub accepted: Vec<Notification>,
    /// Refused for a missing or wrong `clientState`.
    pub refused_client_state: usize,
    /// Refused for a missing or unknown field (named in `problems`).
    pub malformed: usize,
    /// What was wrong with the malformed ones (at most a few).
    pub problems: Vec<String>,
}

/// The item as Graph sends it (every field optional here: a missing one is reported, not a parse failure).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem {
    subscription_id: Option<String>,
    tenant_id: Option<String>,
    client_state: Option<String>,
    change_type: Option<String>,
    lifecycle_event: Option<String>,
    resource: Option<String>,
    resource_data: Option<RawResourceData>,
}

#[derive(Debug, Deserialize)]
struct RawResourceData {
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawBatch {
    value: Vec<serde_json::Value>,
}

/// The secret every notification of our subscriptions carries back.
#[derive(Clone)]
pub struct ClientState(SecretString);

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientState([REDACTED])")
    }
}

impl ClientState {
    /// Graph keeps at most 128 characters; fewer than 32 would be guessable.
    pub fn new(value: SecretString) -> Result<Self, String> {
        let n = value.expose().chars().count();
        if !(32..=128).contains(&n) {
            return Err(format!("must be 32 to 128 characters long (it has {n})"));
        }
        if value.expose().chars().any(|c| c.is_control()) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(value))
    }

    /// The value sent when a subscription is created.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Whether `got` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, got: Option<&str>) -> bool {
        let expected = self.0.expose().as_bytes();
        let got = got.unwrap_or("").as_bytes();
        got.len() == expected.len() && bool::from(got.ct_eq(expected))
    }
}

/// Parses a POST body and keeps the notifications that carry `client_state`.
pub fn sort_batch(body: &[u8], client_state: &ClientState) -> Result<Sorted, BatchError> {
    let batch: RawBatch = serde_json::from_slice(body).map_err(|e| {
        BatchError(format!(
            "the body is not a notification batch ({{\"value\": [...]}}): {e}"
        ))
    })?;
    let mut sorted = Sorted::default();
    for value in batch.value {
        let item: RawItem = match serde_json::from_value(value) {
            Ok(i) => i,
            Err(e) => {
                sorted.note_malformed(format!("an item is not a notification: {e}"));
                continue;
            }
        };
        // The secret is checked first: nothing of a forged item is looked at further.
        if !client_state.matches(item.client_state.as_deref()) {
            sorted.refused_client_state += 1;
            continue;
        }
        match notification(item) {
            Ok(n) => sorted.accepted.push(n),
            Err(why) => sorted.note_malformed(why),
        }
    }
    Ok(sorted)
}

impl Sorted {
    fn note_malformed(&mut self, why: String) {
        self.malformed += 1;
        if self.problems.len() < 5 {
            self.problems.push(why);
        }
    }
}

fn notification(item: RawItem) -> Result<Notification, String> {
    let subscription_id = item
        .subscription_id
        .filter(|s| !s.is_empty())
        .ok_or("a notification has no subscriptionId")?;
    let tenant_id = item
        .tenant_id
        .filter(|s| !s.is_empty())
        .ok_or("a notification has no tenantId")?;
    if let Some(event) = item.lifecycle_event {
        let event = match event.as_str() {
            "missed" => LifecycleEvent::Missed,
            "reauthorizationRequired" => LifecycleEvent::ReauthorizationRequired,
            "subscriptionRemoved" => LifecycleEvent::SubscriptionRemoved,
            other => return Err(format!("unknown lifecycleEvent '{other}'")),
        };
        return Ok(Notification::Lifecycle {
            subscription_id,
            tenant_id,
            event,
        });
    }
    let change = match item.change_type.as_deref() {
        Some("created") => ChangeType::Created,
        Some("updated") => ChangeType::Updated,
        Some("deleted") => ChangeType::Deleted,
        Some(other) => return Err(format!("unknown changeType '{other}'")),
        None => return Err("a notification has neither changeType nor lifecycleEvent".into()),
    };
    let user_id = item
        .resource_data
        .and_then(|d| d.id)
        .or_else(|| item.resource.as_deref().and_then(user_of_resource))
        .filter(|id| !id.is_empty())
        .ok_or("a change notification names no user (resourceData.id, resource)")?;
    Ok(Notification::Change {
        subscription_id,
        tenant_id,
        change,
        user_id,
    })
}

/// `Users/{id}` (Graph's spelling) or `users/{id}` → the id.
fn user_of_resource(resource: &str) -> Option<String> {
    let (kind, id) = resource.trim_start_matches('/').split_once('/')?;
    (kind.eq_ignore_ascii_case("users") && !id.contains('/')).then(|| id.to_string())
}

/// The `validationToken` of Graph's validation call, from a query string, decoded: it must be echoed exactly.
pub fn validation_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned())
}

/// A subscription as licensewatch keeps it (per tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Tenant.
    pub tenant_id: String,
    /// Graph's id.
    pub subscription_id: String,
    /// Where Graph posts.
    pub notification_url: String,
    /// When Graph stops notifying unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last renewed or reauthorised.
    #[serde(default)]
    pub renewed_at: Option<DateTime<Utc>>,
    /// When a change or lifecycle notification last arrived through it.
    #[serde(default)]
    pub last_notification_at: Option<DateTime<Utc>>,
}

/// What the renewal run does with a tenant's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upkeep {
    /// No (live) subscription for this URL: create one.
    Create,
    /// Renew this one.
    Renew(String),
    /// Nothing to do yet.
    Keep,
}

/// Decides the upkeep of `record` at `now` for notifications to `url`.
pub fn upkeep(record: Option<&SubscriptionRecord>, url: &str, now: DateTime<Utc>) -> Upkeep {
    match record {
        None => Upkeep::Create,
        Some(r) if r.expires_at <= now || r.notification_url != url => Upkeep::Create,
        Some(r) if r.expires_at - now < RENEW_WHEN_LEFT => Upkeep::Renew(r.subscription_id.clone()),
        Some(_) => Upkeep::Keep,
    }
}

/// The expiry to ask for: Graph's longest, less an hour, so that a clock ahead of Graph's is never refused.
pub fn requested_expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(USERS_MAX_MINUTES - 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ClientState {
        ClientState::new(SecretString::new("s".repeat(40))).unwrap()
    }

    fn item(client_state: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({"subscriptionId": "sub", "tenantId": "t", "clientState": client_state,
            "subscriptionExpirationDateTime": "2026-12-20T00:00:00Z"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn a_batch_keeps_only_items_with_our_client_state() {
        let ours = "s".repeat(40);
        let body = serde_json::json!({"value": [
            item(&ours, serde_json::json!({"changeType": "updated", "resource": "Users/u1",
                "resourceData": {"@odata.type": "#Microsoft.Graph.User", "id": "u1", "organizationId": "t"}})),
            item("forged-but-plausible-client-state-value", serde_json::json!({"changeType": "deleted", "resource": "Users/u2"})),
            item(&ours, serde_json::json!({"changeType": "deleted", "resource": "Users/u3"})),
            item(&ours, serde_json::json!({"lifecycleEvent": "missed"})),
            item(&ours, serde_json::json!({"changeType": "moved", "resource": "Users/u4"})),
            serde_json::json!({"changeType": "updated", "resource": "Users/u5", "subscriptionId": "sub", "tenantId": "t"}),
        ]});
        let s = sort_batch(body.to_string().as_bytes(), &secret()).unwrap();
        assert_eq!(s.refused_client_state, 2, "{s:?}");
        assert_eq!(s.malformed, 1, "{s:?}");
        assert!(s.problems[0].contains("moved"), "{s:?}");
        assert_eq!(
            s.accepted,
            vec![
                Notification::Change {
                    subscription_id: "sub".into(),
                    tenant_id: "t".into(),
                    change: ChangeType::Updated,
                    user_id: "u1".into()
                },
                Notification::Change {
                    subscription_id: "sub".into(),
                    tenant_id: "t".into(),
                    change: ChangeType::Deleted,
                    user_id: "u3".into()
                },
                Notification::Lifecycle {
                    subscription_id: "sub".into(),
                    tenant_id: "t".into(),
                    event: LifecycleEvent::Missed
                },
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_a_batch_is_an_error() {
        for body in [&b"{}"[..], b"[]", b"not json", b"{\"value\": 3}"] {
            assert!(sort_batch(body, &secret()).is_err());
        }
    }

    #[test]
    fn client_state_length_is_checked_and_never_printed() {
        assert!(ClientState::new(SecretString::new("short")).is_err());
        assert!(ClientState::new(SecretString::new("x".repeat(129))).is_err());
        let c = secret();
        assert!(!format!("{c:?}").contains("sss"));
        assert!(c.matches(Some(&"s".repeat(40))));
        assert!(!c.matches(Some(&"s".repeat(39))));
        assert!(!c.matches(None));
    }

    #[test]
    fn the_validation_token_is_decoded() {
        assert_eq!(
            validation_token("validationToken=Validation%3A+Testing+client%20app"),
            Some("Validation: Testing client app".into())
        );
        assert_eq!(validation_token("other=1"), None);
    }

    #[test]
    fn upkeep_creates_renews_and_keeps() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let rec = |left: Duration| SubscriptionRecord {
            tenant_id: "t".into(),
            subscription_id: "s1".into(),
            notification_url: "https://x/n".into(),
            expires_at: now + left,
            created_at: now - Duration::days(20),
            renewed_at: None,
            last_notification_at: None,
        };
        assert_eq!(upkeep(None, "https://x/n", now), Upkeep::Create);
        assert_eq!(
            upkeep(Some(&rec(Duration::days(10))), "https://x/n", now),
            Upkeep::Keep
        );
        assert_eq!(
            upkeep(Some(&rec(Duration::days(2))), "https://x/n", now),
            Upkeep::Renew("s1".into())
        );
        assert_eq!(
            upkeep(Some(&rec(Duration::minutes(-1))), "https://x/n", now),
            Upkeep::Create
        );
        assert_eq!(
            upkeep(Some(&rec(Duration::days(10))), "https://y/n", now),
            Upkeep::Create
        );
        assert!(requested_expiry(now) - now < Duration::minutes(USERS_MAX_MINUTES));
    }
}
