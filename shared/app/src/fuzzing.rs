//! Test support: bounded random fuzzing of the parsers (unit tests only). Each target feeds its parser seeds that
//! are valid inputs, mutated in random ways (bytes flipped, inserted, deleted, duplicated, spliced from another
//! seed, cut short), for a time budget: `LICENSEWATCH_FUZZ_SECONDS` (1 by default, so the workspace test run stays
//! short; set it higher to fuzz for longer). A panic fails the test, with the input that caused it printed.

use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*): the same seed gives the same inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the parsers give meaning to, worth inserting.
const INTERESTING: [&[u8]; 12] = [
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"\\u0000",
    b"-1",
    b"99999999999999999999",
    b"\xff\xfe",
];

/// One mutation of `input` (other seeds may be spliced in).
pub fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + rng.below(32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            4 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            5 => out.truncate(at),
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// The time budget of each target.
pub fn budget() -> Duration {
    let seconds = std::env::var("LICENSEWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds)
}

/// Feeds `target` the seeds, then mutations of them, until the budget is spent; returns how many inputs it ran.
pub fn run(name: &str, seed: u64, seeds: &[Vec<u8>], target: impl Fn(&[u8])) -> u64 {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut runs = 0u64;
    let mut current: Vec<u8> = Vec::new();
    let report = |input: &[u8]| {
        eprintln!(
            "fuzz {name}: this input panicked ({} bytes): {:?}",
            input.len(),
            String::from_utf8_lossy(input)
        );
    };
    for s in seeds {
        guarded(s, &target, &report);
        runs += 1;
    }
    while started.elapsed() < budget() {
        let base = match (current.is_empty(), seeds.is_empty()) {
            (true, false) => seeds[rng.below(seeds.len())].clone(),
            _ => current.clone(),
        };
        current = mutate(&mut rng, &base, seeds);
        guarded(&current, &target, &report);
        runs += 1;
        // Mutations pile up a few times, then start again from a seed.
        if rng.below(8) == 0 {
            current.clear();
        }
    }
    eprintln!(
        "fuzz {name}: {runs} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    runs
}

fn guarded(input: &[u8], target: &impl Fn(&[u8]), report: &impl Fn(&[u8])) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
    if let Err(panic) = outcome {
        report(input);
        std::panic::resume_unwind(panic);
    }
}

/// The parsers reachable from the crate's public surface; the private ones are fuzzed in their own modules' tests
/// (the snapshot body, Management API blobs, webhook bodies).
#[cfg(test)]
mod targets {
    use serde_json::json;

    use super::run;

    fn seed(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap_or_default()
    }

    #[test]
    #[should_panic(expected = "found it")]
    fn a_parser_that_panics_fails_the_run() {
        run("a panicking parser", 9, &[b"{}".to_vec()], |b| {
            if b.contains(&b'[') {
                panic!("found it");
            }
        });
    }

    #[test]
    fn notification_batches_never_panic() {
        use crate::domain::change_notifications::{ClientState, sort_batch};
        let state = ClientState::new(crate::secret::SecretString::new(
            "fuzz-client-state-0123456789abcdef0123",
        ))
        .expect("state");
        let seeds = [
            seed(
                json!({"value": [{"subscriptionId": "s", "changeType": "updated", "resource": "Users/u",
                "resourceData": {"id": "u"}, "clientState": "fuzz-client-state-0123456789abcdef0123", "tenantId": "t"}]}),
            ),
            seed(
                json!({"value": [{"subscriptionId": "s", "lifecycleEvent": "reauthorizationRequired",
                "clientState": "fuzz-client-state-0123456789abcdef0123", "tenantId": "t"}]}),
            ),
        ];
        run("notification batches", 1, &seeds, |b| {
            let _ = sort_batch(b, &state);
        });
    }

    #[test]
    fn licence_records_of_both_sources_never_panic() {
        use crate::domain::license_event::{
            from_directory_audit, from_management_record, group_licensing_run,
        };
        let lic = "[SkuName=ENTERPRISEPACK, AccountId=48a80680-7326-48cd-9935-b556b81d3a4e, SkuId=6fd2c87f-b296-42f0-b197-1e91e994b900, DisabledPlans=[]]";
        let seeds = [
            seed(
                json!({"Id": "1", "CreationTime": "2026-11-20T10:00:00", "Operation": "Update user.",
                "ResultStatus": "Success", "ObjectId": "adele@contoso.com", "UserId": "admin@contoso.com",
                "Target": [{"ID": "User_0b9a7c1e-7b0a-4a56-9a3c-5c0f1d2e3f40", "Type": 2}],
                "ModifiedProperties": [{"Name": "AssignedLicense", "NewValue": format!("[\"{lic}\"]"), "OldValue": "[]"}],
                "ExtendedProperties": [{"Name": "additionalDetails", "Value": "{\"Succeeded\":1,\"Failed\":1}"}]}),
            ),
            seed(
                json!({"id": "Directory_1", "activityDateTime": "2026-11-20T10:00:00Z", "activityDisplayName": "Update user",
                "result": "success", "correlationId": "c", "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}},
                "targetResources": [{"id": "u", "userPrincipalName": "adele@contoso.com", "modifiedProperties": [
                    {"displayName": "AssignedLicense", "oldValue": "[]", "newValue": format!("[\"{lic}\"]")}]}],
                "additionalDetails": [{"key": "seq", "value": "1"}, {"key": "c", "value": "2"}]}),
            ),
        ];
        run("licence records", 2, &seeds, |b| {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) {
                let _ = from_management_record(&v);
                let _ = from_directory_audit(&v);
                let _ = group_licensing_run(&v);
            }
        });
    }

    #[test]
    fn graph_user_pages_and_delta_rounds_never_panic() {
        use crate::ports::directory::types::{DeltaUser, ListedUser, User};
        #[derive(serde::Deserialize)]
        struct Page<T> {
            #[allow(dead_code)]
            value: Vec<T>,
        }
        let user = json!({"id": "u", "userPrincipalName": "adele@contoso.com", "accountEnabled": true,
            "createdDateTime": "2026-01-01T00:00:00Z", "mail": "adele@contoso.com", "userType": "Member",
            "assignedLicenses": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": []}],
            "assignedPlans": [{"service": "exchange", "capabilityStatus": "Enabled", "servicePlanId": "p",
                "assignedDateTime": "2026-01-01T00:00:00Z"}],
            "licenseAssignmentStates": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "state": "Error",
                "error": "CountViolation", "assignedByGroup": "g", "disabledPlans": []}],
            "signInActivity": {"lastSignInDateTime": "0001-01-01T00:00:00Z"}, "proxyAddresses": ["SMTP:adele@contoso.com"]});
        let seeds = [
            seed(
                json!({"value": [user.clone()], "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=x"}),
            ),
            seed(
                json!({"value": [user, {"id": "gone", "@removed": {"reason": "deleted"}}],
                "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"}),
            ),
        ];
        run("graph pages", 3, &seeds, |b| {
            let _ = serde_json::from_slice::<Page<User>>(b);
            let _ = serde_json::from_slice::<Page<ListedUser>>(b);
            let _ = serde_json::from_slice::<Page<DeltaUser>>(b);
        });
    }

    #[test]
    fn webhook_signature_headers_never_panic() {
        use crate::domain::signing::{StandardHeaders, WebhookSecret, verify_hub, verify_standard};
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"user": "adele@contoso.com", "action": "reprocess"}"#;
        let seeds = [
            b"msg_1\n1700000000\nv1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".to_vec(),
            b"sha256=3b5e2f7c9d1a0e4f6b8c2d4e6f8a0b2c4d6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a".to_vec(),
        ];
        run("webhook headers", 4, &seeds, |b| {
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
        });
    }

    #[test]
    fn the_policy_file_never_panics() {
        use crate::policy::Policy;
        let mut every = Policy::default();
        every.notify.admins = vec!["it-team@contoso.com".into()];
        every.notify.sender = "licensing@contoso.com".into();
        let seeds = [
            toml::to_string(&every).unwrap_or_default().into_bytes(),
            b"[[tenants]]\nid = \"contoso.onmicrosoft.com\"\n[tenants.check]\nsku_low_seats = 3\n[[tenants.suppressions]]\nkind = \"sku_capacity\"\nuntil = \"2027-01-31\"\n".to_vec(),
        ];
        run("policy", 5, &seeds, |b| {
            let _ = Policy::parse(&String::from_utf8_lossy(b));
        });
    }
}
