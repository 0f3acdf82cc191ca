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
    /// Source record ids.
    pub record_ids: Vec<String>,
    /// The change's correlation (directory audit `correlationId`, Management API `InterSystemsId`), when known: the
    /// records of one change can arrive in different runs, and the event they form is stored under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// When the audit logs say `sku_id` was last assigned to the user at or before `before` (a licence licensewatch
/// found already held on its first run: the audit logs, the Purview history included, date it), and by whom.
pub fn assigned_before<'e>(
    events: &'e [LicenseEvent],
    sku_id: &str,
    before: DateTime<Utc>,
) -> Option<&'e LicenseEvent> {
    events
        .iter()
        .filter(|e| !e.failed() && e.at <= before)
        .filter(|e| {
            e.added_sku_ids
                .iter()
                .any(|s| s.eq_ignore_ascii_case(sku_id))
        })
        .max_by_key(|e| e.at)
}

impl LicenseEvent {
    /// True for a change that did not happen.
    pub fn failed(&self) -> bool {
        self.result.eq_ignore_ascii_case("failure") || self.result.eq_ignore_ascii_case("failed")
    }

    /// The key the event is stored under: its change's correlation when known, so that an event completed by a
    /// later run replaces the partial one; otherwise its record ids.
    pub fn key(&self) -> String {
        match self.correlation_id.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => format!(
                "{}|{}|{c}",
                self.source,
                self.user_id.as_deref().unwrap_or("")
            ),
            None => format!("{}|{}", self.source, self.record_ids.join(",")),
        }
    }

    /// True when the event concerns this user (by id or UPN).
    pub(crate) fn concerns(&self, user_id: &str, upn: &str) -> bool {
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
pub(crate) fn parse_assigned_license(value: &str) -> Vec<(String, Vec<String>)> {
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
pub(crate) fn skus_in_message(message: &str) -> Vec<String> {
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

/// One chunk of a split ("sequence") directory audit: Microsoft spreads a large licence diff over several events
/// with one `correlationId`; each carries `seq` (its number), `c` (how many) and `b` (a fragment of a JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The chunk's number.
    pub seq: u32,
    /// How many chunks the change has.
    pub count: u32,
    /// The fragment.
    pub body: String,
}

/// A licence list: `(sku id, disabled plan ids)`, lower-case.
pub type Licences = Vec<(String, Vec<String>)>;

/// One licence-related audit record, from either source, before the records of one change are merged. Kept in the
/// state store until its change is complete, because the parts of one change can arrive in different runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseRecord {
    /// Record id.
    pub id: String,
    /// Groups the records of one change (directory audit `correlationId`, Management API `InterSystemsId`).
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
    pub old: Option<Licences>,
    /// Licences after / attempted.
    pub new: Option<Licences>,
    /// success or failure.
    pub failed: bool,
    /// Failure reason.
    pub reason: Option<String>,
    /// `directory_audit` or `management_api`.
    pub source: String,
    /// Set on a part of a split change.
    #[serde(default)]
    pub chunk: Option<Chunk>,
}

impl LicenseRecord {
    /// The change this record belongs to: records with one key are merged into one event.
    pub fn group_key(&self) -> String {
        let corr = if self.correlation.is_empty() {
            &self.id
        } else {
            &self.correlation
        };
        format!("{}|{corr}", self.source)
    }
}

const DIRECTORY: &str = "directory_audit";
const MANAGEMENT: &str = "management_api";

/// Reads a Graph `directoryAudit` that concerns licences: "Change user license", "Update user" with
/// `AssignedLicense` (or failed, or one chunk of a split change), "Add user" with `AssignedLicense` (licences given at
/// creation). Anything else, whatever its shape, gives `None`.
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
    let failed = v["result"]
        .as_str()
        .is_some_and(|r| !r.eq_ignore_ascii_case("success"));
    let chunk = chunk_of(&v["additionalDetails"]);
    if !is_licence_write(activity.trim_end_matches('.'), prop.is_some(), failed) && chunk.is_none()
    {
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
    Some(LicenseRecord {
        id: super::record_id(v, "id"),
        correlation: v["correlationId"].as_str().unwrap_or_default().to_string(),
        at,
        actor,
        user_id: target["id"].as_str().map(str::to_string),
        upn: target["userPrincipalName"].as_str().map(str::to_string),
        old: prop.map(|p| licences_in(&p["oldValue"])),
        new: prop.map(|p| licences_in(&p["newValue"])),
        failed,
        reason: v["resultReason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        source: DIRECTORY.into(),
        chunk,
    })
}

/// True for an activity (without its trailing period) that writes licences. A failed "Update user" counts even
/// without `AssignedLicense`: real failure records carry no licence list, because nothing changed.
/// Whether a Management API record with this `Operation` can carry a licence change or a group-licensing result:
/// audit-fetch parses only these records in full and archives the rest as they came.
pub fn management_operation_of_interest(operation: &str) -> bool {
    matches!(
        operation.trim_end_matches('.'),
        "Change user license" | "Update user" | "Add user" | GROUP_LICENSING_FINISHED
    )
}

/// The activity Entra writes when a group-licensing run ends.
const GROUP_LICENSING_FINISHED: &str = "Finish applying group based license to users";

fn is_licence_write(activity: &str, has_assigned_license: bool, failed: bool) -> bool {
    match activity {
        "Change user license" => true,
        "Update user" => has_assigned_license || failed,
        "Add user" => has_assigned_license,
        _ => false,
    }
}

/// The chunk fields of a split event's `additionalDetails` (`seq`, `c`, `b`), when all three are there.
fn chunk_of(details: &serde_json::Value) -> Option<Chunk> {
    let get = |k: &str| {
        details.as_array()?.iter().find_map(|d| {
            (d["key"].as_str()? == k).then(|| match &d["value"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })?
        })
    };
    let seq = get("seq")?.trim().parse().ok()?;
    let count: u32 = get("c")?.trim().parse().ok()?;
    (count > 0).then_some(())?;
    Some(Chunk {
        seq,
        count,
        body: get("b")?,
    })
}

/// Licences in an `AssignedLicense` value: usually a string holding a JSON array of strings, sometimes the array
/// itself; anything else is no licence.
fn licences_in(value: &serde_json::Value) -> Licences {
    match value {
        serde_json::Value::String(s) => parse_assigned_license(s),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .flat_map(|i| parse_assigned_license(&serde_json::Value::from(vec![i]).to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads a Management Activity API record that concerns licences ("Change user license.", "Update user." with
/// `AssignedLicense` or failed, "Add user." with `AssignedLicense`). Other operations and shapes this parser does
/// not know (string lists in `ModifiedProperties`, string `RecordType`) give `None`; the archive keeps them anyway.
pub fn from_management_record(v: &serde_json::Value) -> Option<LicenseRecord> {
    let op = v["Operation"].as_str()?;
    let prop = v["ModifiedProperties"]
        .as_array()
        .and_then(|p| p.iter().find(|m| m["Name"] == "AssignedLicense"));
    let status = v["ResultStatus"].as_str().unwrap_or("Success");
    let failed =
        !(status.eq_ignore_ascii_case("success") || status.eq_ignore_ascii_case("succeeded"));
    if !is_licence_write(op.trim_end_matches('.'), prop.is_some(), failed) {
        return None;
    }
    // CreationTime has no zone in real data: it is UTC.
    let created = v["CreationTime"].as_str()?;
    let at = chrono::NaiveDateTime::parse_from_str(
        created.trim_end_matches('Z'),
        "%Y-%m-%dT%H:%M:%S%.f",
    )
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
    // "Change user license." and its "Update user." share InterSystemsId and IntraSystemId.
    let correlation = ["InterSystemsId", "IntraSystemId"]
        .iter()
        .find_map(|k| v[*k].as_str().filter(|c| !c.is_empty()))
        .unwrap_or_default();
    Some(LicenseRecord {
        id: super::record_id(v, "Id"),
        correlation: correlation.to_string(),
        at,
        actor: v["UserId"].as_str().map(str::to_string),
        user_id,
        upn: v["ObjectId"].as_str().map(str::to_string),
        old: prop.map(|p| licences_in(&p["OldValue"])),
        new: prop.map(|p| licences_in(&p["NewValue"])),
        failed,
        reason,
        source: MANAGEMENT.into(),
        chunk: None,
    })
}

/// The licences a complete set of chunks describes: the fragments, joined in `seq` order, form a JSON document (or
/// its escaped text) whose `targetUpdatedProperties` hold `AssignedLicense` (or `LicenseAssignmentDetail`).
/// `None` while a chunk is missing.
pub(crate) fn assemble_chunks(chunks: &[&Chunk]) -> Option<(Licences, Licences)> {
    let count = chunks.iter().map(|c| c.count).max()?;
    let mut ordered: Vec<&Chunk> = chunks.to_vec();
    ordered.sort_by_key(|c| c.seq);
    ordered.dedup_by_key(|c| c.seq);
    if ordered.len() != count as usize {
        return None;
    }
    let text: String = ordered.iter().map(|c| c.body.as_str()).collect();
    let doc: serde_json::Value = serde_json::from_str(&text)
        .ok()
        .or_else(|| {
            // The fragment may be JSON text escaped as a string body.
            let unescaped: String = serde_json::from_str(&format!("\"{text}\"")).ok()?;
            serde_json::from_str(&unescaped).ok()
        })
        .unwrap_or(serde_json::Value::Null);
    let props = find_key(&doc, "targetUpdatedProperties")
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default();
    let named = |name: &str| {
        props.iter().find(|p| {
            ["Name", "name", "displayName"]
                .iter()
                .any(|k| p[*k].as_str() == Some(name))
        })
    };
    let side = |p: &serde_json::Value, keys: [&str; 2]| -> Licences {
        keys.iter()
            .map(|k| &p[*k])
            .find(|v| !v.is_null())
            .map(licences_in)
            .unwrap_or_default()
    };
    if let Some(p) = named("AssignedLicense") {
        return Some((
            side(p, ["OldValue", "oldValue"]),
            side(p, ["NewValue", "newValue"]),
        ));
    }
    if let Some(p) = named("LicenseAssignmentDetail") {
        let details = |keys: [&str; 2]| -> Licences {
            let v = keys.iter().map(|k| &p[*k]).find(|v| !v.is_null());
            let v = match v {
                Some(serde_json::Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
                Some(other) => other.clone(),
                None => serde_json::Value::Null,
            };
            v.as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| {
                            let sku = i["SkuId"].as_str().or(i["skuId"].as_str())?;
                            let plans = i["DisabledPlans"]
                                .as_array()
                                .or(i["disabledPlans"].as_array())
                                .map(|ps| {
                                    ps.iter()
                                        .filter_map(|p| p.as_str())
                                        .map(str::to_ascii_lowercase)
                                        .collect()
                                })
                                .unwrap_or_default();
                            Some((sku.to_ascii_lowercase(), plans))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        return Some((
            details(["OldValue", "oldValue"]),
            details(["NewValue", "newValue"]),
        ));
    }
    // Complete, but nothing this parser understands: an event without SKUs, the raw records stay archived.
    Some((Vec::new(), Vec::new()))
}

fn find_key<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

/// What merging a set of licence records gave.
#[derive(Debug, Default)]
pub struct Merged {
    /// One event per complete change.
    pub events: Vec<LicenseEvent>,
    /// Group keys whose chunks are not all in yet: their records stay pending.
    pub incomplete: Vec<String>,
}

/// Merges the records of each change (same source and correlation) into licence events: "Change user license"
/// carries no licence list of its own (its "Update user" does), and large changes are split by Microsoft over
/// several chunks that are only complete when every chunk is in.
pub fn merge(records: &[LicenseRecord]) -> Merged {
    let mut groups: std::collections::BTreeMap<String, Vec<&LicenseRecord>> = Default::default();
    for r in records {
        groups.entry(r.group_key()).or_default().push(r);
    }
    let mut out = Merged::default();
    for (key, mut rs) in groups {
        rs.sort_by(|a, b| a.id.cmp(&b.id));
        rs.dedup_by(|a, b| a.id == b.id);
        let chunks: Vec<&Chunk> = rs.iter().filter_map(|r| r.chunk.as_ref()).collect();
        let assembled = if chunks.is_empty() {
            None
        } else {
            match assemble_chunks(&chunks) {
                Some(lists) => Some(lists),
                None => {
                    out.incomplete.push(key);
                    continue;
                }
            }
        };
        out.events.push(event_of(&rs, assembled));
    }
    out.events.sort_by_key(|e| e.at);
    out
}

fn event_of(rs: &[&LicenseRecord], assembled: Option<(Licences, Licences)>) -> LicenseEvent {
    let mut old: Licences = Vec::new();
    let mut new: Licences = Vec::new();
    let mut has_lists = false;
    for r in rs {
        if let Some(o) = &r.old {
            old.extend(o.iter().cloned());
            has_lists = true;
        }
        if let Some(n) = &r.new {
            new.extend(n.iter().cloned());
            has_lists = true;
        }
    }
    if let Some((o, n)) = assembled {
        old.extend(o);
        new.extend(n);
        has_lists = true;
    }
    let failed = rs.iter().any(|r| r.failed);
    let reason = rs.iter().find_map(|r| r.reason.clone());
    let (mut added, mut removed): (Vec<String>, Vec<String>) = if failed {
        // Nothing changed. A failure record may still name what was attempted (in a list or in its reason);
        // real ones usually do not.
        let mut tried: Vec<String> = new
            .iter()
            .filter(|(s, _)| !old.iter().any(|(o, _)| o == s))
            .map(|(s, _)| s.clone())
            .collect();
        if tried.is_empty() {
            tried = reason.as_deref().map(skus_in_message).unwrap_or_default();
        }
        (tried, vec![])
    } else if has_lists {
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
    } else {
        (vec![], vec![])
    };
    added.sort();
    added.dedup();
    removed.sort();
    removed.dedup();
    let first = rs[0];
    let correlation = rs
        .iter()
        .map(|r| r.correlation.clone())
        .find(|c| !c.is_empty());
    LicenseEvent {
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
        source: first.source.clone(),
        record_ids: rs.iter().map(|r| r.id.clone()).collect(),
        correlation_id: correlation,
    }
}

/// A group-based licensing run as the audit log summarises it ("Finish applying group based license to users"):
/// Microsoft writes no per-user failure record, only these counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLicensingRun {
    /// Record id.
    pub id: String,
    /// When it finished.
    pub at: DateTime<Utc>,
    /// The group's id, when the record names it.
    pub group_id: Option<String>,
    /// The group's display name, when the record names it.
    pub group_name: Option<String>,
    /// Users who got their licences.
    pub succeeded: Option<u64>,
    /// Users for whom the assignment failed.
    pub failed: u64,
}

/// Reads a "Finish applying group based license to users" record from either source; `None` for anything else or
/// when the record holds no failure count.
pub fn group_licensing_run(v: &serde_json::Value) -> Option<GroupLicensingRun> {
    const FINISH: &str = GROUP_LICENSING_FINISHED;
    let (id, at, group) = if v["activityDisplayName"].as_str() == Some(FINISH) {
        let group = v["targetResources"].as_array().and_then(|ts| {
            ts.iter().find(|t| {
                t["type"]
                    .as_str()
                    .or(t["Type"].as_str())
                    .is_some_and(|k| k.eq_ignore_ascii_case("group"))
            })
        });
        let at = DateTime::parse_from_rfc3339(v["activityDateTime"].as_str()?)
            .ok()?
            .to_utc();
        (
            v["id"].as_str()?,
            at,
            group.map(|g| (g["id"].as_str(), g["displayName"].as_str())),
        )
    } else if v["Operation"].as_str().map(|o| o.trim_end_matches('.')) == Some(FINISH) {
        let at = chrono::NaiveDateTime::parse_from_str(
            v["CreationTime"].as_str()?.trim_end_matches('Z'),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .ok()?
        .and_utc();
        let group_id = v["Target"].as_array().and_then(|t| {
            t.iter()
                .filter_map(|x| x["ID"].as_str())
                .map(|id| id.trim_start_matches("Group_"))
                .find(|id| uuid::Uuid::parse_str(id).is_ok())
        });
        (
            v["Id"].as_str()?,
            at,
            Some((group_id.or(v["ObjectId"].as_str()), None)),
        )
    } else {
        return None;
    };
    // The counts sit in a modified property's text in practice; look for them in every string of the record.
    let mut texts = Vec::new();
    collect_strings(v, &mut texts);
    let count_after = |needle: &str| {
        texts.iter().find_map(|t| {
            let lower = t.to_ascii_lowercase();
            let at = lower.find(needle)? + needle.len();
            let digits: String = lower[at..]
                .trim_start_matches([':', ' ', '='])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok()
        })
    };
    let failed = count_after("license assignment failed")?;
    Some(GroupLicensingRun {
        id: id.to_string(),
        at,
        group_id: group.and_then(|g| g.0).map(str::to_string),
        group_name: group.and_then(|g| g.1).map(str::to_string),
        succeeded: count_after("successfully assigned licenses"),
        failed,
    })
}

fn collect_strings<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        serde_json::Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
    const PBI: &str = "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235";

    #[test]
    fn a_licence_held_on_the_first_run_is_dated_by_its_last_successful_assignment_before_it() {
        let at = |d: &str| DateTime::parse_from_rfc3339(d).expect("time").to_utc();
        let event = |when: &str, added: &str, result: &str| LicenseEvent {
            at: at(when),
            actor: Some("admin@contoso.com".into()),
            user_id: None,
            user_principal_name: Some("adele@contoso.com".into()),
            added_sku_ids: vec![added.to_string()],
            removed_sku_ids: vec![],
            result: result.into(),
            reason: None,
            source: "management_api".into(),
            record_ids: vec![],
            correlation_id: None,
        };
        let events = [
            event("2026-06-01T10:00:00Z", E3, "success"),
            event("2026-09-01T10:00:00Z", E3, "success"),
            event("2026-10-01T10:00:00Z", E3, "failure"),
            event("2026-10-15T10:00:00Z", PBI, "success"),
            event("2026-12-01T10:00:00Z", E3, "success"),
        ];
        let first_run = at("2026-11-21T09:00:00Z");
        let found = assigned_before(&events, E3, first_run).expect("dated");
        assert_eq!(
            found.at,
            at("2026-09-01T10:00:00Z"),
            "the last success before the first run"
        );
        assert!(assigned_before(&events, E3, at("2026-05-01T00:00:00Z")).is_none());
    }

    #[test]
    fn every_record_the_licence_rules_read_passes_the_operation_filter() {
        // audit-fetch parses only records whose operation passes the filter: a record the rules would read must
        // never be filtered out, whatever its result or properties.
        let ops = [
            "Change user license.",
            "Update user.",
            "Add user.",
            "Finish applying group based license to users.",
            "Delete user.",
            "UserLoggedIn",
            "Set license properties.",
            "Update user",
        ];
        for op in ops {
            for status in ["Success", "Failure"] {
                let record = json!({
                    "Id": "1", "CreationTime": "2026-11-20T10:00:00", "Operation": op, "ResultStatus": status,
                    "ObjectId": "adele@contoso.com",
                    "Target": [{"ID": "User_0b9a7c1e-7b0a-4a56-9a3c-5c0f1d2e3f40", "Type": 2}],
                    "ModifiedProperties": [{"Name": "AssignedLicense", "NewValue": lic(E3, "ENTERPRISEPACK"), "OldValue": "[]"}],
                    "ExtendedProperties": [{"Name": "additionalDetails", "Value": "{\"Succeeded\":1,\"Failed\":1}"}]
                });
                let read = from_management_record(&record).is_some()
                    || group_licensing_run(&record).is_some();
                assert!(
                    !read || management_operation_of_interest(op),
                    "{op} {status}"
                );
            }
        }
        assert!(!management_operation_of_interest("UserLoggedIn"));
    }

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
        let events = merge(&recs).events;
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
        )
        .events;
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
        let events = merge(&[from_management_record(&failed).expect("licence record")]).events;
        assert_eq!(events[0].result, "failure");
        assert_eq!(events[0].added_sku_ids, vec![E3.to_string()]);
        assert!(
            events[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("available licenses"))
        );
    }

    #[test]
    fn a_failure_without_skus_is_a_licence_record_and_other_shapes_are_skipped() {
        let failed = json!({"id": "f1", "correlationId": "c", "activityDisplayName": "Update user",
            "activityDateTime": "2026-10-27T09:00:00Z", "result": "failure",
            "resultReason": "The directory object quota limit for the tenant has been exceeded.",
            "initiatedBy": {"user": {"userPrincipalName": "it.admin@contoso.com"}},
            "targetResources": [{"id": "u1", "type": "User", "modifiedProperties": [
                {"displayName": "TargetId.UserType", "oldValue": null, "newValue": "\"Member\""}]}]});
        let r = from_directory_audit(&failed).expect("a failed licence write");
        let e = &merge(&[r]).events[0];
        assert!(e.failed() && e.added_sku_ids.is_empty());
        // A successful "Update user" of other properties is not licence activity.
        let mut ok = failed.clone();
        ok["result"] = json!("success");
        assert!(from_directory_audit(&ok).is_none());
        // String lists in ModifiedProperties, string RecordType, unknown operations: skipped, no panic.
        for v in [
            json!({"Id": "x", "Operation": "Update user.", "RecordType": "8", "CreationTime": "2026-11-21T08:00:00",
                "ModifiedProperties": ["HtmlBody", "CreationTime"]}),
            json!({"Id": "y", "Operation": "CopilotInteraction", "RecordType": 261}),
            json!(["not", "an", "object"]),
            json!(null),
        ] {
            assert!(from_management_record(&v).is_none(), "{v}");
            assert!(group_licensing_run(&v).is_none());
        }
    }

    #[test]
    fn sequence_chunks_assemble_in_seq_order_only_when_complete() {
        let doc = json!({"targetUpdatedProperties": [{"Name": "AssignedLicense", "OldValue": "[]",
            "NewValue": list(&[lic(E3, "ENTERPRISEPACK")])}]})
        .to_string();
        let (a, b) = doc.split_at(doc.len() / 2);
        let chunk = |seq: u32, body: &str| Chunk {
            seq,
            count: 2,
            body: body.to_string(),
        };
        let (one, two) = (chunk(1, a), chunk(2, b));
        assert_eq!(assemble_chunks(&[&two]), None, "one of two");
        let (old, new) = assemble_chunks(&[&two, &one]).expect("complete");
        assert!(old.is_empty());
        assert_eq!(new, vec![(E3.to_string(), vec![])]);
        // The fragments may hold the document as escaped text.
        let escaped = serde_json::to_string(&doc).expect("s");
        let escaped = &escaped[1..escaped.len() - 1];
        let (a, b) = escaped.split_at(escaped.len() / 2);
        let (one, two) = (chunk(1, a), chunk(2, b));
        assert_eq!(
            assemble_chunks(&[&one, &two]).map(|l| l.1),
            Some(vec![(E3.to_string(), vec![])])
        );
    }

    #[test]
    fn group_licensing_finish_counts_are_read_from_either_source() {
        let directory = json!({"id": "g1", "activityDisplayName": "Finish applying group based license to users",
            "activityDateTime": "2026-11-21T09:00:00Z",
            "targetResources": [{"id": "grp", "displayName": "Faculty", "type": "Group", "modifiedProperties": [
                {"displayName": "", "newValue": "[Users successfully assigned licenses: 6, Users for whom license assignment failed: 2.]"}]}]});
        let run = group_licensing_run(&directory).expect("run");
        assert_eq!((run.succeeded, run.failed), (Some(6), 2));
        assert_eq!(run.group_name.as_deref(), Some("Faculty"));
        let management = json!({"Id": "m1", "Operation": "Finish applying group based license to users.",
            "CreationTime": "2026-11-21T09:00:00", "ObjectId": "11111111-2222-3333-4444-555555555555",
            "ModifiedProperties": [{"Name": "", "NewValue": "[Users successfully assigned licenses: 0, Users for whom license assignment failed: 0.]"}]});
        let run = group_licensing_run(&management).expect("run");
        assert_eq!(run.failed, 0);
        assert_eq!(
            run.group_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
    }

    #[test]
    fn add_user_with_assigned_license_is_a_grant() {
        let add = json!({"Id": "a1", "Operation": "Add user.", "CreationTime": "2026-11-21T10:00:00",
            "ObjectId": "new@contoso.com", "UserId": "it.admin@contoso.com", "ResultStatus": "Success",
            "ModifiedProperties": [{"Name": "AssignedLicense", "OldValue": "[]", "NewValue": list(&[lic(E3, "ENTERPRISEPACK")])}]});
        let e = &merge(&[from_management_record(&add).expect("record")]).events[0];
        assert_eq!(e.added_sku_ids, vec![E3.to_string()]);
        assert_eq!(e.result, "success");
        let mut no_licence = add.clone();
        no_licence["ModifiedProperties"] = json!([]);
        assert!(from_management_record(&no_licence).is_none());
    }
}
