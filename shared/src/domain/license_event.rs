//! Licence-change events: what audit-fetch derives from the audit logs and license-check uses as evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One licence change (or failed change) for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who: a UPN or an app name (e.g. "Microsoft Azure AD Group-Based Licensing").
    pub actor: Option<String>,
    /// Target user id.
    pub user_id: Option<String>,
    /// Target UPN.
    pub user_principal_name: Option<String>,
    /// SKUs added (attempted, for a failure).
    pub added_sku_ids: Vec<String>,
    /// SKUs removed.
    pub removed_sku_ids: Vec<String>,
    /// `success` or `failure`.
    pub result: String,
    /// Failure reason, if any.
    pub reason: Option<String>,
    /// `directory_audit` or `management_api`.
    pub source: String,
    /// Source record ids (dedupe key).
    pub record_ids: Vec<String>,
}

impl LicenseEvent {
    /// True for a change that did not happen.
    pub fn failed(&self) -> bool {
        self.result.eq_ignore_ascii_case("failure") || self.result.eq_ignore_ascii_case("failed")
    }

    /// True when the event concerns this user (by id or UPN).
    pub fn concerns(&self, user_id: &str, upn: &str) -> bool {
        self.user_id
            .as_deref()
            .is_some_and(|i| i.eq_ignore_ascii_case(user_id))
            || self
                .user_principal_name
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(upn))
    }
}

/// Licences named in an `AssignedLicense` value: a string holding a JSON array of strings shaped like
/// `[SkuName=ENTERPRISEPACK, AccountId=<guid>, SkuId=<guid>, DisabledPlans=[<guid>, ...]]`.
pub fn parse_assigned_license(value: &str) -> Vec<(String, Vec<String>)> {
    let items: Vec<String> = match serde_json::from_str::<Vec<String>>(value.trim()) {
        Ok(v) => v,
        // Some records carry the array of items without the JSON string wrapping.
        Err(_) => vec![value.to_string()],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(sku) = field(&item, "SkuId=") else {
            continue;
        };
        let disabled = item
            .find("DisabledPlans=[")
            .map(|i| &item[i + "DisabledPlans=[".len()..])
            .and_then(|rest| rest.find(']').map(|j| &rest[..j]))
            .map(|list| {
                list.split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.push((sku, disabled));
    }
    out
}

fn field(item: &str, key: &str) -> Option<String> {
    let start = item.find(key)? + key.len();
    let rest = &item[start..];
    let end = rest.find([',', ']']).unwrap_or(rest.len());
    let v = rest[..end].trim().to_ascii_lowercase();
    (!v.is_empty()).then_some(v)
}

/// SKU GUIDs named in a licensing error message ("Subscription with SKU <guid> does not have ...").
pub fn skus_in_message(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in message.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        if word.len() == 36
            && uuid::Uuid::parse_str(word).is_ok()
            && !out.contains(&word.to_ascii_lowercase())
        {
            out.push(word.to_ascii_lowercase());
        }
    }
    out
}

/// One licence-related audit record, from either source, before records of one change are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseRecord {
    /// Record id.
    pub id: String,
    /// Groups the records of one change (directory audit correlationId, Management API InterSystemsId).
    pub correlation: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Option<String>,
    /// Target user id.
    pub user_id: Option<String>,
    /// Target UPN.
    pub upn: Option<String>,
    /// Licences before (from `AssignedLicense` old value), if the record carries them.
    pub old: Option<Vec<(String, Vec<String>)>>,
    /// Licences after / attempted.
    pub new: Option<Vec<(String, Vec<String>)>>,
    /// success or failure.
    pub failed: bool,
    /// Failure reason.
    pub reason: Option<String>,
    /// `directory_audit` or `management_api`.
    pub source: &'static str,
}

/// Reads a Graph `directoryAudit` that concerns licences ("Change user license", "Update user" with
/// `AssignedLicense`); other activities give `None`.
pub fn from_directory_audit(v: &serde_json::Value) -> Option<LicenseRecord> {
    let activity = v["activityDisplayName"].as_str()?;
    let target = v["targetResources"].as_array()?.iter().find(|t| {
        t["type"]
            .as_str()
            .or(t["Type"].as_str())
            .is_some_and(|k| k.eq_ignore_ascii_case("user"))
    })?;
    let prop = target["modifiedProperties"]
        .as_array()
        .and_then(|p| p.iter().find(|m| m["displayName"] == "AssignedLicense"));
    if activity != "Change user license" && !(activity == "Update user" && prop.is_some()) {
        return None;
    }
    let initiated = &v["initiatedBy"];
    let actor = initiated["user"]["userPrincipalName"]
        .as_str()
        .or(initiated["app"]["displayName"].as_str())
        .map(str::to_string);
    let at = DateTime::parse_from_rfc3339(v["activityDateTime"].as_str()?)
        .ok()?
        .to_utc();
    let failed = v["result"]
        .as_str()
        .is_some_and(|r| !r.eq_ignore_ascii_case("success"));
    Some(LicenseRecord {
        id: v["id"].as_str()?.to_string(),
        correlation: v["correlationId"].as_str().unwrap_or_default().to_string(),
        at,
        actor,
        user_id: target["id"].as_str().map(str::to_string),
        upn: target["userPrincipalName"].as_str().map(str::to_string),
        old: prop
            .and_then(|p| p["oldValue"].as_str())
            .map(parse_assigned_license),
        new: prop
            .and_then(|p| p["newValue"].as_str())
            .map(parse_assigned_license),
        failed,
        reason: v["resultReason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        source: "directory_audit",
    })
}

/// Reads a Management Activity API record that concerns licences ("Change user license.", "Update user." with
/// `AssignedLicense`); other operations give `None`.
pub fn from_management_record(v: &serde_json::Value) -> Option<LicenseRecord> {
    let op = v["Operation"].as_str()?;
    let prop = v["ModifiedProperties"]
        .as_array()
        .and_then(|p| p.iter().find(|m| m["Name"] == "AssignedLicense"));
    if op != "Change user license." && !(op == "Update user." && prop.is_some()) {
        return None;
    }
    // CreationTime has no zone in real data: it is UTC.
    let created = v["CreationTime"].as_str()?;
    let at =
        chrono::NaiveDateTime::parse_from_str(created.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S")
            .ok()?
            .and_utc();
    let user_id = v["Target"].as_array().and_then(|t| {
        t.iter()
            .filter_map(|x| x["ID"].as_str())
            .map(|id| id.trim_start_matches("User_"))
            .find(|id| uuid::Uuid::parse_str(id).is_ok())
            .map(str::to_string)
    });
    let reason = v["ExtendedProperties"]
        .as_array()
        .and_then(|p| p.iter().find(|e| e["Name"] == "resultReason"))
        .and_then(|e| e["Value"].as_str())
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let status = v["ResultStatus"].as_str().unwrap_or("Success");
    Some(LicenseRecord {
        id: v["Id"].as_str()?.to_string(),
        correlation: v["InterSystemsId"].as_str().unwrap_or_default().to_string(),
        at,
        actor: v["UserId"].as_str().map(str::to_string),
        user_id,
        upn: v["ObjectId"].as_str().map(str::to_string),
        old: prop
            .and_then(|p| p["OldValue"].as_str())
            .map(parse_assigned_license),
        new: prop
            .and_then(|p| p["NewValue"].as_str())
            .map(parse_assigned_license),
        failed: !(status.eq_ignore_ascii_case("success")
            || status.eq_ignore_ascii_case("succeeded")),
        reason,
        source: "management_api",
    })
}

/// Merges the records of each change (same source and correlation) into licence events: large changes are split by
/// Microsoft over several records, and the "Change user license" record carries no licence list of its own.
pub fn merge(records: &[LicenseRecord]) -> Vec<LicenseEvent> {
    let mut groups: std::collections::BTreeMap<(String, &str), Vec<&LicenseRecord>> =
        Default::default();
    for r in records {
        let key = if r.correlation.is_empty() {
            r.id.clone()
        } else {
            r.correlation.clone()
        };
        groups.entry((key, r.source)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((_, source), rs) in groups {
        let mut old: Vec<(String, Vec<String>)> = Vec::new();
        let mut new: Vec<(String, Vec<String>)> = Vec::new();
        let mut has_lists = false;
        for r in &rs {
            if let Some(o) = &r.old {
                old.extend(o.iter().cloned());
                has_lists = true;
            }
            if let Some(n) = &r.new {
                new.extend(n.iter().cloned());
                has_lists = true;
            }
        }
        let failed = rs.iter().any(|r| r.failed);
        let reason = rs.iter().find_map(|r| r.reason.clone());
        let (mut added, mut removed): (Vec<String>, Vec<String>) = if has_lists {
            (
                new.iter()
                    .filter(|(s, _)| !old.iter().any(|(o, _)| o == s))
                    .map(|(s, _)| s.clone())
                    .collect(),
                old.iter()
                    .filter(|(s, _)| !new.iter().any(|(n, _)| n == s))
                    .map(|(s, _)| s.clone())
                    .collect(),
            )
        } else if failed {
            // Only the failure is known: the SKUs the error message names were being assigned.
            (
                reason.as_deref().map(skus_in_message).unwrap_or_default(),
                vec![],
            )
        } else {
            (vec![], vec![])
        };
        added.sort();
        added.dedup();
        removed.sort();
        removed.dedup();
        let first = rs[0];
        let mut ids: Vec<String> = rs.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        out.push(LicenseEvent {
            at: rs.iter().map(|r| r.at).min().unwrap_or(first.at),
            actor: rs.iter().find_map(|r| r.actor.clone()),
            user_id: rs.iter().find_map(|r| r.user_id.clone()),
            user_principal_name: rs.iter().find_map(|r| r.upn.clone()),
            added_sku_ids: added,
            removed_sku_ids: removed,
            result: if failed {
                "failure".into()
            } else {
                "success".into()
            },
            reason,
            source: source.to_string(),
            record_ids: ids,
        });
    }
    out.sort_by_key(|e| e.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
    const PBI: &str = "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235";

    fn lic(sku: &str, name: &str) -> String {
        format!(
            "[SkuName={name}, AccountId=48a80680-7326-48cd-9935-b556b81d3a4e, SkuId={sku}, DisabledPlans=[]]"
        )
    }

    fn list(items: &[String]) -> String {
        serde_json::to_string_pretty(items)
            .expect("json")
            .replace('\n', "\r\n")
    }

    #[test]
    fn assigned_license_values_are_parsed_with_disabled_plans() {
        let v = list(&[
            lic(E3, "ENTERPRISEPACK"),
            format!(
                "[SkuName=POWER_BI_STANDARD, AccountId=x, SkuId={PBI}, DisabledPlans=[2049E525-B859-401B-B2A0-E0A31C4B1FE4, 113feb6c-3fe4-4440-bddc-54d774bf0318]]"
            ),
        ]);
        let parsed = parse_assigned_license(&v);
        assert_eq!(parsed[0], (E3.to_string(), vec![]));
        assert_eq!(
            parsed[1].1,
            vec![
                "2049e525-b859-401b-b2a0-e0a31c4b1fe4",
                "113feb6c-3fe4-4440-bddc-54d774bf0318"
            ]
        );
        assert!(parse_assigned_license("[]").is_empty());
        assert!(parse_assigned_license("not json at all").is_empty());
    }

    #[test]
    fn directory_audit_pair_becomes_one_removal_event_with_actor() {
        let corr = "c0rr";
        let change = json!({"id": "a1", "correlationId": corr, "activityDisplayName": "Change user license",
            "activityDateTime": "2026-11-19T14:03:00.000Z", "result": "success", "resultReason": "",
            "initiatedBy": {"user": {"userPrincipalName": "it.admin@contoso.com"}, "app": null},
            "targetResources": [{"id": "u1", "type": "User", "userPrincipalName": "p@contoso.com", "modifiedProperties": []}]});
        let update = json!({"id": "a2", "correlationId": corr, "activityDisplayName": "Update user",
            "activityDateTime": "2026-11-19T14:03:00.000Z", "result": "success",
            "initiatedBy": {"user": {"userPrincipalName": "it.admin@contoso.com"}, "app": null},
            "targetResources": [{"id": "u1", "type": "User", "userPrincipalName": "p@contoso.com", "modifiedProperties": [
                {"displayName": "AssignedLicense", "oldValue": list(&[lic(E3, "ENTERPRISEPACK"), lic(PBI, "POWER_BI_STANDARD")]), "newValue": list(&[lic(PBI, "POWER_BI_STANDARD")])}]}]});
        let other = json!({"id": "a3", "activityDisplayName": "Add member to group", "activityDateTime": "2026-11-19T14:03:00Z",
            "targetResources": [{"id": "g", "type": "Group"}]});
        let recs: Vec<_> = [&change, &update, &other]
            .into_iter()
            .filter_map(from_directory_audit)
            .collect();
        assert_eq!(recs.len(), 2);
        let events = merge(&recs);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.removed_sku_ids, vec![E3.to_string()]);
        assert!(e.added_sku_ids.is_empty());
        assert_eq!(e.actor.as_deref(), Some("it.admin@contoso.com"));
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.record_ids, vec!["a1", "a2"]);
        assert_eq!(e.result, "success");
    }

    #[test]
    fn management_records_split_over_several_events_and_failures_are_read() {
        let rec = |id: &str, old: &[String], new: &[String]| {
            json!({"Id": id, "Operation": "Update user.", "CreationTime": "2026-11-21T10:00:00", "InterSystemsId": "corr-1",
                "ResultStatus": "Success", "UserId": "Microsoft Azure AD Group-Based Licensing", "ObjectId": "t@contoso.com",
                "Target": [{"ID": "User_11111111-2222-3333-4444-555555555555", "Type": 2}],
                "ModifiedProperties": [{"Name": "AssignedLicense", "OldValue": list(old), "NewValue": list(new)}]})
        };
        // One large change, split over two records.
        let a = rec("m1", &[], &[lic(E3, "ENTERPRISEPACK")]);
        let b = rec("m2", &[], &[lic(PBI, "POWER_BI_STANDARD")]);
        let events = merge(
            &[a, b]
                .iter()
                .filter_map(from_management_record)
                .collect::<Vec<_>>(),
        );
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].added_sku_ids,
            vec![E3.to_string(), PBI.to_string()]
        );
        assert_eq!(
            events[0].user_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(
            events[0].actor.as_deref(),
            Some("Microsoft Azure AD Group-Based Licensing")
        );
        // A failed assignment known only from "Change user license." and its reason.
        let failed = json!({"Id": "m3", "Operation": "Change user license.", "CreationTime": "2026-10-24T10:12:00",
            "InterSystemsId": "corr-2", "ResultStatus": "Failure", "UserId": "it.admin@contoso.com", "ObjectId": "m@contoso.com",
            "ExtendedProperties": [{"Name": "resultReason", "Value": format!("Subscription with SKU {E3} does not have any available licenses.")}],
            "ModifiedProperties": []});
        let events = merge(&[from_management_record(&failed).expect("licence record")]);
        assert_eq!(events[0].result, "failure");
        assert_eq!(events[0].added_sku_ids, vec![E3.to_string()]);
        assert!(
            events[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("available licenses"))
        );
    }
}
