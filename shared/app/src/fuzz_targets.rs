//! Every parser that reads input from a user, a tenant or the network, as one entry point each that takes bytes
//! and must never panic, with the valid inputs its fuzzing starts from. The same targets run in two places: bounded
//! in every test run (`fuzzing.rs`, a mutator over arbitrary bytes), and coverage-guided for as long as one likes
//! (`fuzz/`, AFL++ through cargo-afl; docs/RELIABILITY.md).

use serde_json::json;

/// A target: bytes in, never a panic.
pub type Target = fn(&[u8]);

/// The targets, by name.
pub const TARGETS: [(&str, Target); 9] = [
    ("snapshot", snapshot),
    ("audit_records", audit_records),
    ("management_blob", management_blob),
    ("graph_pages", graph_pages),
    ("webhook_body", webhook_body),
    ("webhook_source_body", webhook_source_body),
    ("webhook_headers", webhook_headers),
    ("notification_batch", notification_batch),
    ("policy", policy),
];

/// The stored snapshot: the whole document and its body, as every store reads them back.
pub fn snapshot(b: &[u8]) {
    use crate::ports::snapshot_format::{decode, decode_mark, decode_previous, fuzz_body};
    let _ = decode(b);
    let _ = decode_mark(b);
    let _ = decode_previous(b);
    fuzz_body(b);
}

/// Licence records of both audit sources (directory audits, Management API records) and group-licensing runs.
pub(crate) fn audit_records(b: &[u8]) {
    use crate::domain::license_event::{
        from_directory_audit, from_management_record, group_licensing_run,
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) {
        let _ = from_management_record(&v);
        let _ = from_directory_audit(&v);
        let _ = group_licensing_run(&v);
    }
}

/// A Management Activity API content blob, as audit-fetch prepares it for the archive.
pub(crate) fn management_blob(b: &[u8]) {
    use crate::usecases::fetch_audit::prepare::{Shape, management_blob};
    let shape = Shape::management("Audit.AzureActiveDirectory");
    let _ = management_blob(b.to_vec(), &shape, "2026-11-21", None);
}

/// Graph user pages and delta rounds, in each shape they are read in.
pub(crate) fn graph_pages(b: &[u8]) {
    use crate::ports::directory::types::{Allotment, DeltaUser, ListedUser, User};
    #[derive(serde::Deserialize)]
    struct Page<T> {
        #[allow(dead_code)]
        value: Vec<T>,
    }
    let _ = serde_json::from_slice::<Page<User>>(b);
    let _ = serde_json::from_slice::<Page<ListedUser>>(b);
    let _ = serde_json::from_slice::<Page<DeltaUser>>(b);
    let _ = serde_json::from_slice::<Page<Allotment>>(b);
}

/// The remediation endpoint's own request body.
pub(crate) fn webhook_body(b: &[u8]) {
    crate::usecases::webhook::fuzz_body(b);
}

/// A ticketing system's body mapped by a source's JSON pointers (into JSON strings too).
pub(crate) fn webhook_source_body(b: &[u8]) {
    crate::usecases::webhook::sources::fuzz_body(b);
}

/// Signature headers: Standard Webhooks (`id\ntimestamp\nsignatures`), `X-Hub-Signature(-256)`, a secret's text.
pub(crate) fn webhook_headers(b: &[u8]) {
    use crate::domain::signing::{StandardHeaders, WebhookSecret, verify_hub, verify_standard};
    let Ok(secret) = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") else {
        return;
    };
    let body = br#"{"user": "adele@contoso.com", "action": "reprocess"}"#;
    let text = String::from_utf8_lossy(b);
    let mut parts = text.splitn(3, '\n');
    let headers = StandardHeaders {
        id: parts.next(),
        timestamp: parts.next(),
        signature: parts.next(),
    };
    let _ = verify_standard(
        std::slice::from_ref(&secret),
        &headers,
        body,
        1_700_000_000,
        300,
    );
    let _ = verify_hub(b"secret", &text, body);
    let _ = WebhookSecret::parse(&text);
}

/// A batch of Graph change notifications, as the endpoint sorts it.
pub fn notification_batch(b: &[u8]) {
    use crate::domain::change_notifications::{ClientState, sort_batch};
    let Ok(state) = ClientState::new(crate::secret::SecretString::new(
        "fuzz-client-state-0123456789abcdef0123",
    )) else {
        return;
    };
    let _ = sort_batch(b, &state);
}

/// The policy file.
pub fn policy(b: &[u8]) {
    let _ = crate::policy::Policy::parse(&String::from_utf8_lossy(b));
}

fn to_bytes(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Valid inputs of `target` to start from.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let lic = "[SkuName=ENTERPRISEPACK, AccountId=48a80680-7326-48cd-9935-b556b81d3a4e, SkuId=6fd2c87f-b296-42f0-b197-1e91e994b900, DisabledPlans=[]]";
    let management = json!({"Id": "1", "CreationTime": "2026-11-20T10:00:00", "Operation": "Update user.",
        "ResultStatus": "Success", "ObjectId": "adele@contoso.com", "UserId": "admin@contoso.com", "RecordType": 8,
        "Target": [{"ID": "User_0b9a7c1e-7b0a-4a56-9a3c-5c0f1d2e3f40", "Type": 2}],
        "ModifiedProperties": [{"Name": "AssignedLicense", "NewValue": format!("[\"{lic}\"]"), "OldValue": "[]"}],
        "ExtendedProperties": [{"Name": "additionalDetails", "Value": "{\"Succeeded\":1,\"Failed\":1}"}]});
    let user = json!({"id": "u", "userPrincipalName": "adele@contoso.com", "accountEnabled": true,
        "createdDateTime": "2026-01-01T00:00:00Z", "mail": "adele@contoso.com", "userType": "Member",
        "assignedLicenses": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": []}],
        "assignedPlans": [{"service": "exchange", "capabilityStatus": "Enabled", "servicePlanId": "p",
            "assignedDateTime": "2026-01-01T00:00:00Z"}],
        "licenseAssignmentStates": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "state": "Error",
            "error": "CountViolation", "assignedByGroup": "g", "disabledPlans": []}],
        "signInActivity": {"lastSignInDateTime": "0001-01-01T00:00:00Z"}, "proxyAddresses": ["SMTP:adele@contoso.com"]});
    match target {
        "snapshot" => crate::ports::snapshot_format::fuzz_seeds(),
        "audit_records" => vec![
            to_bytes(management.clone()),
            to_bytes(json!({"id": "Directory_1", "activityDateTime": "2026-11-20T10:00:00Z",
                "activityDisplayName": "Update user", "result": "success", "correlationId": "c",
                "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}},
                "targetResources": [{"id": "u", "userPrincipalName": "adele@contoso.com", "modifiedProperties": [
                    {"displayName": "AssignedLicense", "oldValue": "[]", "newValue": format!("[\"{lic}\"]")}]}],
                "additionalDetails": [{"key": "seq", "value": "1"}, {"key": "c", "value": "2"}]})),
        ],
        "management_blob" => vec![to_bytes(json!([management,
            {"CreationTime": "2026-11-21T00:00:01", "Operation": "UserLoggedIn", "RecordType": 15},
            {"Id": "a3", "CreationTime": "2026-11-21T00:00:02", "Operation": "Finish applying group based license to users.",
             "ExtendedProperties": [{"Name": "additionalDetails", "Value": "{\"Succeeded\":1,\"Failed\":1}"}]}]))],
        "graph_pages" => vec![
            to_bytes(json!({"value": [user.clone()], "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=x"})),
            to_bytes(json!({"value": [user, {"id": "gone", "@removed": {"reason": "deleted"}}],
                "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"})),
            to_bytes(json!({"value": [{"id": "a", "skuId": "s", "skuPartNumber": "ENTERPRISEPACK", "allottedUnits": "250",
                "consumedUnits": 3, "waitingMembers": [{"id": "w", "waitingSinceDateTime": "2024-11-22T17:11:10.6635939+00:00"}]}]})),
        ],
        "webhook_body" => vec![
            br#"{"user": "adele@contoso.com", "action": "assign", "sku_ids": ["6fd2c87f-b296-42f0-b197-1e91e994b900"], "ticket": {"system": "servicenow", "id": "INC1", "callback_url": "https://x.example/cb"}}"#.to_vec(),
            br#"{"user": "u", "action": "copy_from", "template_user": "t", "dry_run": true, "remove_sku_ids": []}"#.to_vec(),
        ],
        "webhook_source_body" => vec![
            br#"{"ID": 1, "Entity": "{\"a\":[{\"b\":\"u\"}]}", "s": ["x"], "d": "true"}"#.to_vec(),
        ],
        "webhook_headers" => vec![
            b"msg_1\n1700000000\nv1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".to_vec(),
            b"sha256=3b5e2f7c9d1a0e4f6b8c2d4e6f8a0b2c4d6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a".to_vec(),
        ],
        "notification_batch" => vec![
            to_bytes(json!({"value": [{"subscriptionId": "s", "changeType": "updated", "resource": "Users/u",
                "resourceData": {"id": "u"}, "clientState": "fuzz-client-state-0123456789abcdef0123", "tenantId": "t"}]})),
            to_bytes(json!({"value": [{"subscriptionId": "s", "lifecycleEvent": "reauthorizationRequired",
                "clientState": "fuzz-client-state-0123456789abcdef0123", "tenantId": "t"}]})),
        ],
        "policy" => {
            let mut every = crate::policy::Policy::default();
            every.notify.admins = vec!["it-team@contoso.com".into()];
            every.notify.sender = "licensing@contoso.com".into();
            vec![
                toml::to_string(&every).unwrap_or_default().into_bytes(),
                b"[[tenants]]\nid = \"contoso.onmicrosoft.com\"\n[tenants.check]\nsku_low_seats = 3\n[[tenants.suppressions]]\nkind = \"sku_capacity\"\nuntil = \"2027-01-31\"\n".to_vec(),
            ]
        }
        _ => Vec::new(),
    }
}
