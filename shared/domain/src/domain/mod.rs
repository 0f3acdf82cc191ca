//! Pure licensing rules and types: no I/O, no clock of their own.

pub mod assignment;
pub mod attempt;
pub mod audit_search;
pub mod catalog;
pub mod change_notifications;
pub mod checks;
pub mod doctor;
pub mod findings;
pub mod forecast;
pub mod grace;
pub mod kinds;
pub mod license_event;
pub mod overlap;
pub mod permissions;
pub mod reclaim;
pub mod retry;
pub mod runbook;
pub mod signing;
pub mod snapshot;
pub mod statement;
pub mod suppression;
pub mod tenant_status;
pub mod waiting_room;

/// The id an audit record is archived and deduplicated under: its own id (`id` in directory audits, `Id` in the
/// Management Activity API), which Microsoft documents as the way to drop its duplicates. A record that lacks one
/// (trimmed by a forwarder) gets an id from its content, so it is still kept once rather than lost.
pub fn record_id(record: &serde_json::Value, id_field: &str) -> String {
    match &record[id_field] {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => {
            use sha2::Digest;
            // serde_json orders object keys, so equal records give equal text whatever their field order.
            let digest = sha2::Sha256::digest(record.to_string().as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("content-sha256:{hex}")
        }
    }
}
