//! One module per job; each takes its ports explicitly and never reads the environment or the real clock.

pub mod change_notifications;
pub mod check_licenses;
pub mod doctor;
pub mod fetch_audit;
pub mod lease;
pub mod mailbox_purposes;
pub mod notify_grace_period;
pub mod reclaim;
pub mod reprocess_user;
pub mod search_audit;
pub mod statement;
pub mod suppressions;
pub mod tenant_status;
pub mod webhook;
