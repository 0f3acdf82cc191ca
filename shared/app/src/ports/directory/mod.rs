//! The directory port: what the use cases read from and write to Entra ID. Microsoft Graph implements it
//! ([`crate::adapters::graph::GraphClient`]); the `testing` feature has an in-memory directory. The records are
//! Graph's own shapes ([`types`]), because the directory *is* Graph: a second model would only copy it.

pub mod types;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::ApiError;
use types::{DeltaUser, DirectoryObject, Group, ListedUser, SubscribedSku, User};

/// A listing read page by page, so that memory holds one page at a time.
#[async_trait]
pub trait Pages<T>: Send {
    /// The next page's items, or `None` after the last page.
    async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError>;
    /// Pages read so far.
    fn pages_fetched(&self) -> u32;
    /// After the last page of a delta round: the link the next round starts from.
    fn delta_link(&self) -> Option<String> {
        None
    }
    /// True when the listing is known to have no page left (without asking for one); `false` when unknown.
    fn is_done(&self) -> bool {
        false
    }
}

/// A listing that fails on its first page (a link refused before any request).
pub struct Failed(pub Option<ApiError>);

#[async_trait]
impl<T> Pages<T> for Failed {
    async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn pages_fetched(&self) -> u32 {
        0
    }
}

/// A boxed listing.
pub type BoxPages<'a, T> = Box<dyn Pages<T> + 'a>;

/// A listing of users as snapshots.
struct Distilled<'a>(BoxPages<'a, User>);

#[async_trait]
impl Pages<ListedUser> for Distilled<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<ListedUser>>, ApiError> {
        let page = self.0.next_page().await?;
        Ok(page.map(|users| users.iter().map(|u| ListedUser(u.snapshot())).collect()))
    }

    fn pages_fetched(&self) -> u32 {
        self.0.pages_fetched()
    }
}

/// Entra ID, as the use cases see it.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The tenant's subscriptions (`subscribedSkus`).
    async fn subscribed_skus(&self) -> Result<Vec<SubscribedSku>, ApiError>;
    /// Every user with the licence properties ([`types::USER_SELECT`]).
    fn users(&self) -> BoxPages<'_, User>;
    /// The same listing as [`Directory::users`], each user distilled into its snapshot. Graph distils while it
    /// parses a page (no owned copy of every plan of every user); this default distils the users of `users()`.
    fn user_snapshots(&self) -> BoxPages<'_, ListedUser> {
        Box::new(Distilled(self.users()))
    }
    /// The tenant's commercial subscriptions (`/directory/subscriptions`, needs `LicenseAssignment.Read.All` or
    /// `Directory.Read.All`). A directory without them has none.
    async fn company_subscriptions(&self) -> Result<Vec<types::CompanySubscription>, ApiError> {
        Ok(Vec::new())
    }
    /// The seat pools of Graph's beta `cloudLicensing` API with their waiting rooms (`CloudLicensing.Read.All`;
    /// global cloud only). A directory without it has none.
    async fn allotments(&self) -> Result<Vec<types::Allotment>, ApiError> {
        Ok(Vec::new())
    }
    /// A `/users/delta` round: from `link` (the last round's `@odata.deltaLink`), or, without one, an empty round
    /// that only yields a link to start from. A directory without change tracking yields no link, so every check
    /// reads the whole tenant.
    fn users_delta(&self, link: Option<&str>) -> BoxPages<'_, DeltaUser> {
        let _ = link;
        Box::new(Failed(None))
    }
    /// Every user with their licences and `signInActivity` ([`types::USER_SIGN_IN_SELECT`]). Graph refuses the
    /// property with 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant` in a tenant without Entra ID P1,
    /// and with 403 `Authorization_RequestDenied` without `AuditLog.Read.All`. A directory without sign-in data
    /// lists its users without it.
    fn users_with_sign_in(&self) -> BoxPages<'_, User> {
        self.users()
    }
    /// The Exchange mailbox usage report (`getMailboxUsageDetail`, `period` D7, D30, D90 or D180) as Microsoft's
    /// CSV; needs `Reports.Read.All`. A directory without reports has an empty one.
    async fn mailbox_usage(&self, period: &str) -> Result<Vec<u8>, ApiError> {
        let _ = period;
        Ok(Vec::new())
    }
    /// One user by id or UPN; `None` when there is no such user.
    async fn user(&self, id_or_upn: &str) -> Result<Option<User>, ApiError>;
    /// What a user's mailbox is for (`mailboxSettings/userPurpose`, needs `MailboxSettings.Read`); `None` for a
    /// user without an Exchange Online mailbox, or a purpose Graph added after this version. A directory without
    /// mailbox settings knows none.
    async fn mailbox_purpose(
        &self,
        user_id: &str,
    ) -> Result<Option<crate::domain::kinds::MailboxPurpose>, ApiError> {
        let _ = user_id;
        Ok(None)
    }
    /// One user with every property a listing reads ([`types::USER_SELECT`]); `None` when there is no such user.
    async fn user_in_full(&self, id_or_upn: &str) -> Result<Option<User>, ApiError> {
        self.user(id_or_upn).await
    }
    /// Users by object id, as [`Directory::user_in_full`] reads each (`None` for an id that is gone), in any
    /// order. Graph reads them in JSON batches.
    async fn users_in_full(&self, ids: &[String]) -> Result<Vec<(String, Option<User>)>, ApiError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id.clone(), self.user_in_full(id).await?));
        }
        Ok(out)
    }
    /// Groups Graph reports with members in licence error.
    fn groups_with_license_errors(&self) -> BoxPages<'_, Group>;
    /// Every group that assigns licences (the fallback where the filter above is refused).
    fn licensed_groups(&self) -> BoxPages<'_, Group>;
    /// A group's members in licence error.
    fn members_with_license_errors(&self, group_id: &str) -> BoxPages<'_, DirectoryObject>;
    /// Directory audit records with `activityDateTime` in `[from, to)` (`to` open when `None`).
    fn directory_audits(
        &self,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> BoxPages<'_, Value>;
    /// A licence write (`assignLicense`, `reprocessLicenseAssignment`): `path` relative to the Graph root.
    async fn write(&self, path: &str, body: &Value) -> Result<Value, ApiError>;
}

/// A user id or UPN as one segment of a directory path (`users/{segment}/assignLicense`): a UPN may hold characters
/// that would otherwise change the path.
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A change-notification subscription to create (`POST /subscriptions`).
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    /// e.g. `/users`.
    pub resource: &'a str,
    /// e.g. `updated,deleted`.
    pub change_type: &'a str,
    /// Where Graph posts change notifications (public `https`).
    pub notification_url: &'a str,
    /// Where Graph posts lifecycle notifications.
    pub lifecycle_url: &'a str,
    /// When Graph stops notifying unless renewed.
    pub expires_at: DateTime<Utc>,
    /// The secret every notification carries back (never logged).
    pub client_state: &'a str,
}

/// Graph change-notification subscriptions (`/subscriptions`): Graph calls the notification URL with a validation
/// token before it answers a creation.
#[async_trait]
pub trait ChangeSubscriptions: Send + Sync {
    /// Creates a subscription; returns its id and expiry.
    async fn create_subscription(
        &self,
        request: &NewSubscription<'_>,
    ) -> Result<(String, DateTime<Utc>), ApiError>;
    /// Moves a subscription's expiry; `None` when Graph no longer has it (expired or removed).
    async fn renew_subscription(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ApiError>;
    /// Reauthorises a subscription (after `reauthorizationRequired`); false when Graph no longer has it.
    async fn reauthorize_subscription(&self, id: &str) -> Result<bool, ApiError>;
    /// Deletes a subscription (gone already is fine).
    async fn delete_subscription(&self, id: &str) -> Result<(), ApiError>;
}
