//! The audit records the simulated tenant writes for licence activity, shaped as Microsoft writes them
//! (../shared/reference/REAL_RECORDS.md), not as licensewatch would like them:
//! - a licence change is "Change user license" with no modified properties plus an "Update user" that carries
//!   `AssignedLicense` and `AssignedPlan`, paired by `correlationId` (directory audits) or `InterSystemsId` /
//!   `IntraSystemId` (Management Activity API);
//! - a large change is split in the directory audits into "sequence" events (`seq`, `c`, `b` in `additionalDetails`)
//!   written out of order;
//! - a failed write names no SKU: nothing changed, so nothing is diffed;
//! - a user created with licences is one "Add user" carrying `AssignedLicense`;
//! - group-based licensing writes Start/Finish records with counts and no per-user failure record.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::scenario::LicenseSpec;
use crate::tenant::{DirectoryAudit, GROUP_LICENSING_APP, Tenant};

/// A directory audit whose licence diff is longer than this is split into sequence events (Microsoft splits
/// "lengthy" ones; bundle SKUs with many plans are the usual case).
const SPLIT_ABOVE_CHARS: usize = 3_000;
/// The size of one sequence fragment.
const CHUNK_CHARS: usize = 1_200;

const DIRECTORY_CONTENT: &str = "Audit.AzureActiveDirectory";

/// Who did it, in both sources' shapes.
struct Actor {
    /// Graph `initiatedBy`.
    initiated_by: Value,
    /// Management API `UserId`.
    name: String,
}

impl Tenant {
    fn actor(&self, actor: Option<&str>) -> Actor {
        match actor {
            Some(a) if a != GROUP_LICENSING_APP && a.contains('@') => Actor {
                initiated_by: json!({"user": {"id": self.find_user(a).map(|i| self.users[i].spec.id.clone()),
                    "displayName": null, "userPrincipalName": a, "ipAddress": "203.0.113.10"}, "app": null}),
                name: a.to_string(),
            },
            Some(a) if a != GROUP_LICENSING_APP => Actor {
                initiated_by: json!({"user": null, "app": {"appId": null, "displayName": a,
                    "servicePrincipalId": null, "servicePrincipalName": a}}),
                name: a.to_string(),
            },
            _ => Actor {
                initiated_by: json!({"user": null, "app": {"appId": null, "displayName": GROUP_LICENSING_APP,
                    "servicePrincipalId": null, "servicePrincipalName": null}}),
                name: GROUP_LICENSING_APP.to_string(),
            },
        }
    }

    /// `AssignedLicense` text: a JSON array of `[SkuName=..., AccountId=..., SkuId=..., DisabledPlans=[...]]`
    /// strings, indented with `\r\n` as Microsoft writes it.
    fn assigned_license_text(&self, ls: &[LicenseSpec]) -> String {
        let items: Vec<String> = ls
            .iter()
            .map(|l| {
                let name = self
                    .sku(&l.sku_id)
                    .map(|s| s.sku_part_number.clone())
                    .unwrap_or_default();
                format!(
                    "[SkuName={name}, AccountId={}, SkuId={}, DisabledPlans=[{}]]",
                    self.tenant_id,
                    l.sku_id,
                    l.disabled_plans.join(", ")
                )
            })
            .collect();
        serde_json::to_string_pretty(&items)
            .unwrap_or_default()
            .replace('\n', "\r\n")
    }

    /// `AssignedPlan` text: one object per enabled service plan of the licences.
    fn assigned_plan_text(&self, ls: &[LicenseSpec], at: DateTime<Utc>) -> String {
        let plans: Vec<Value> = ls
            .iter()
            .flat_map(|l| self.plans_of(l))
            .map(|p| {
                json!({"SubscribedPlanId": p.id, "ServiceInstance": format!("{}/namcontoso01", p.service),
                    "CapabilityStatus": 0, "AssignedTimestamp": at.format("%m/%d/%Y %H:%M:%S").to_string(),
                    "InitialState": null, "Capability": null, "ServicePlanId": p.id})
            })
            .collect();
        serde_json::to_string(&plans).unwrap_or_default()
    }

    fn correlation(&mut self) -> (u64, String) {
        let n = self.next_id();
        (n, format!("{:08x}-5a5a-4a4a-8b8b-{:012x}", n, self.seed))
    }

    fn user_target(&self, ui: usize, props: Value) -> Value {
        let u = &self.users[ui].spec;
        json!([{"id": u.id, "displayName": null, "type": "User", "userPrincipalName": u.upn,
            "groupType": null, "modifiedProperties": props}])
    }

    #[allow(clippy::too_many_arguments)]
    fn directory_record(
        &self,
        id: String,
        correlation: &str,
        activity: &str,
        at: DateTime<Utc>,
        actor: &Actor,
        failure: Option<&str>,
        targets: Value,
        details: Value,
    ) -> DirectoryAudit {
        let (result, reason) = match failure {
            Some(r) => ("failure", r),
            None => ("success", ""),
        };
        DirectoryAudit {
            at,
            json: json!({
                "id": id, "category": "UserManagement", "correlationId": correlation,
                "result": result, "resultReason": reason,
                "activityDisplayName": activity,
                "activityDateTime": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "loggedByService": "Core Directory", "operationType": if activity.starts_with("Add") { "Add" } else { "Update" },
                "initiatedBy": actor.initiated_by, "targetResources": targets,
                "additionalDetails": details
            }),
        }
    }

    /// A Management Activity API record of Azure AD (`RecordType` 8) about a user.
    #[allow(clippy::too_many_arguments)]
    fn management_record(
        &self,
        id: String,
        op: &str,
        at: DateTime<Utc>,
        actor: &Actor,
        ui: usize,
        (inter, intra): (&str, &str),
        failure: Option<&str>,
        props: Value,
    ) -> Value {
        let u = &self.users[ui].spec;
        json!({
            "CreationTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(), "Id": id, "Operation": op,
            "OrganizationId": self.tenant_id, "RecordType": 8,
            "ResultStatus": if failure.is_some() { "Failure" } else { "Success" },
            "UserKey": format!("{}@{}", actor.name, self.tenant_id), "UserType": 0, "Version": 1,
            "Workload": "AzureActiveDirectory", "ObjectId": u.upn, "UserId": actor.name,
            "AzureActiveDirectoryEventType": 1,
            "ExtendedProperties": [
                {"Name": "additionalDetails", "Value": "{}"},
                {"Name": "extendedAuditEventCategory", "Value": "User"},
                {"Name": "resultReason", "Value": failure.unwrap_or("")}
            ],
            "ModifiedProperties": props,
            "Actor": [{"ID": actor.name, "Type": 5}],
            "ActorContextId": self.tenant_id, "InterSystemsId": inter,
            "IntraSystemId": intra, "SupportTicketId": "",
            "Target": [{"ID": format!("User_{}", u.id), "Type": 2}, {"ID": u.id, "Type": 2},
                       {"ID": u.upn, "Type": 5}],
            "TargetContextId": self.tenant_id
        })
    }

    /// Logs a licence change (or, with `failure`, a failed attempt to make it) in both audit sources. A failure
    /// record names no SKU and its reason names none either, as in real tenants.
    pub(crate) fn audit_change(
        &mut self,
        at: DateTime<Utc>,
        ui: usize,
        actor: Option<&str>,
        old: &[LicenseSpec],
        new: &[LicenseSpec],
        failure: Option<&str>,
    ) {
        let (n, correlation) = self.correlation();
        let actor = self.actor(actor);
        let reason = failure.map(audit_reason);
        let reason = reason.as_deref();
        let user_type = self.users[ui].spec.user_type.clone();
        let target_ids = json!([{"displayName": "TargetId.UserType", "oldValue": null,
            "newValue": format!("\"{user_type}\"")}]);
        let (old_l, new_l) = (
            self.assigned_license_text(old),
            self.assigned_license_text(new),
        );
        let (old_p, new_p) = (
            self.assigned_plan_text(old, at),
            self.assigned_plan_text(new, at),
        );

        // Directory audits.
        let change = self.directory_record(
            format!("Directory_{correlation}_CUL_{n}"),
            &correlation,
            "Change user license",
            at,
            &actor,
            reason,
            self.user_target(ui, json!([])),
            json!([]),
        );
        self.directory_audits.push(change);
        if reason.is_some() {
            let update = self.directory_record(
                format!("Directory_{correlation}_UU_{n}"),
                &correlation,
                "Update user",
                at,
                &actor,
                reason,
                self.user_target(ui, target_ids),
                json!([{"key": "User-Agent", "value": "Microsoft Office 365 Portal"}]),
            );
            self.directory_audits.push(update);
        } else {
            let props = json!([
                {"displayName": "AssignedLicense", "oldValue": old_l, "newValue": new_l},
                {"displayName": "AssignedPlan", "oldValue": old_p, "newValue": new_p},
                {"displayName": "Included Updated Properties", "oldValue": null, "newValue": "\"AssignedLicense, AssignedPlan\""}
            ]);
            let body = json!({"targetUpdatedProperties": [
                {"Name": "AssignedLicense", "OldValue": old_l, "NewValue": new_l},
                {"Name": "AssignedPlan", "OldValue": old_p, "NewValue": new_p}
            ]})
            .to_string();
            if body.len() > SPLIT_ABOVE_CHARS {
                self.push_sequence(at, ui, &actor, &correlation, n, &body);
            } else {
                let update = self.directory_record(
                    format!("Directory_{correlation}_UU_{n}"),
                    &correlation,
                    "Update user",
                    at,
                    &actor,
                    None,
                    self.user_target(ui, props),
                    json!([{"key": "UserType", "value": user_type}]),
                );
                self.directory_audits.push(update);
            }
        }

        // Management Activity API: the same pair, never split.
        let intra = format!("{n:032x}");
        let ids = (correlation.as_str(), intra.as_str());
        let update_props = if reason.is_some() {
            json!([{"Name": "TargetId.UserType", "NewValue": user_type, "OldValue": ""}])
        } else {
            json!([
                {"Name": "AssignedLicense", "NewValue": new_l, "OldValue": old_l},
                {"Name": "AssignedPlan", "NewValue": new_p, "OldValue": old_p},
                {"Name": "Included Updated Properties", "NewValue": "AssignedLicense, AssignedPlan", "OldValue": ""},
                {"Name": "TargetId.UserType", "NewValue": user_type, "OldValue": ""}
            ])
        };
        let records = [
            self.management_record(
                format!("{:08x}-c0de-4c0d-8c0d-{:012x}", n, 1),
                "Change user license.",
                at,
                &actor,
                ui,
                ids,
                reason,
                json!([]),
            ),
            self.management_record(
                format!("{:08x}-c0de-4c0d-8c0d-{:012x}", n, 2),
                "Update user.",
                at,
                &actor,
                ui,
                ids,
                reason,
                update_props,
            ),
        ];
        for r in records {
            self.add_management_record(DIRECTORY_CONTENT, at, r);
        }
    }

    /// Splits a change over sequence events. Graph lists newest first, so a reader meets the last chunk first.
    fn push_sequence(
        &mut self,
        at: DateTime<Utc>,
        ui: usize,
        actor: &Actor,
        correlation: &str,
        n: u64,
        body: &str,
    ) {
        let chars: Vec<char> = body.chars().collect();
        let chunks: Vec<String> = chars
            .chunks(CHUNK_CHARS)
            .map(|c| c.iter().collect())
            .collect();
        let count = chunks.len();
        for (k, fragment) in chunks.into_iter().enumerate() {
            let seq = k + 1;
            let record = self.directory_record(
                format!("Directory_{correlation}_SEQ{seq}_{n}"),
                correlation,
                "Update user",
                at,
                actor,
                None,
                self.user_target(ui, json!([])),
                json!([
                    {"key": "id", "value": format!("{n:016x}")},
                    {"key": "seq", "value": seq.to_string()},
                    {"key": "c", "value": count.to_string()},
                    {"key": "b", "value": fragment}
                ]),
            );
            self.directory_audits.push(record);
        }
    }

    /// Logs a user created with licences: one "Add user" carrying `AssignedLicense` and `AssignedPlan`.
    pub(crate) fn audit_add_user(
        &mut self,
        at: DateTime<Utc>,
        ui: usize,
        licences: &[LicenseSpec],
    ) {
        let (n, correlation) = self.correlation();
        let admin = format!("admin@{}", self.domain);
        let actor = self.actor(Some(&admin));
        let (lic, plans) = (
            self.assigned_license_text(licences),
            self.assigned_plan_text(licences, at),
        );
        let u = &self.users[ui].spec;
        let props = json!([
            {"displayName": "AccountEnabled", "oldValue": "[]", "newValue": "[true]"},
            {"displayName": "AssignedLicense", "oldValue": "[]", "newValue": lic},
            {"displayName": "AssignedPlan", "oldValue": "[]", "newValue": plans},
            {"displayName": "UserPrincipalName", "oldValue": "[]", "newValue": format!("[\"{}\"]", u.upn)},
            {"displayName": "Included Updated Properties", "oldValue": null,
                "newValue": "\"AccountEnabled, AssignedLicense, AssignedPlan, UserPrincipalName\""}
        ]);
        let record = self.directory_record(
            format!("Directory_{correlation}_AU_{n}"),
            &correlation,
            "Add user",
            at,
            &actor,
            None,
            self.user_target(ui, props),
            json!([]),
        );
        self.directory_audits.push(record);
        let intra = format!("{n:032x}");
        let record = self.management_record(
            format!("{:08x}-add0-4add-8add-{:012x}", n, 1),
            "Add user.",
            at,
            &actor,
            ui,
            (&correlation, &intra),
            None,
            json!([
                {"Name": "AccountEnabled", "NewValue": "[\r\n  true\r\n]", "OldValue": "[]"},
                {"Name": "AssignedLicense", "NewValue": lic, "OldValue": "[]"},
                {"Name": "AssignedPlan", "NewValue": plans, "OldValue": "[]"},
                {"Name": "Included Updated Properties", "NewValue": "AccountEnabled, AssignedLicense, AssignedPlan", "OldValue": ""}
            ]),
        );
        self.add_management_record(DIRECTORY_CONTENT, at, record);
    }

    /// Logs the start (`counts` None) or the finish of a group-licensing run over some members.
    pub(crate) fn audit_group_run(
        &mut self,
        at: DateTime<Utc>,
        gi: usize,
        counts: Option<(usize, usize)>,
    ) {
        let (n, correlation) = self.correlation();
        let actor = self.actor(None);
        let (activity, summary) = match counts {
            None => ("Start applying group based license to users", String::new()),
            Some((ok, failed)) => (
                "Finish applying group based license to users",
                format!(
                    "[Users successfully assigned licenses: {ok}, Users for whom license assignment failed: {failed}.]"
                ),
            ),
        };
        let g = &self.groups[gi];
        let props = if summary.is_empty() {
            json!([])
        } else {
            json!([{"displayName": "", "oldValue": null, "newValue": summary}])
        };
        let targets = json!([{"id": g.id, "displayName": g.display_name, "type": "Group",
            "groupType": "azureAD", "modifiedProperties": props}]);
        let record = self.directory_record(
            format!("Directory_{correlation}_GBL_{n}"),
            &correlation,
            activity,
            at,
            &actor,
            None,
            targets,
            json!([]),
        );
        self.directory_audits.push(record);
        let mgmt = json!({
            "CreationTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "Id": format!("{:08x}-9b1a-4b1a-8b1a-{:012x}", n, 1), "Operation": format!("{activity}."),
            "OrganizationId": self.tenant_id, "RecordType": 8, "ResultStatus": "Success",
            "UserKey": format!("{}@{}", actor.name, self.tenant_id), "UserType": 4, "Version": 1,
            "Workload": "AzureActiveDirectory", "ObjectId": g.id, "UserId": actor.name,
            "AzureActiveDirectoryEventType": 1, "ExtendedProperties": [],
            "ModifiedProperties": if summary.is_empty() { json!([]) } else {
                json!([{"Name": "", "NewValue": summary, "OldValue": ""}]) },
            "Actor": [{"ID": actor.name, "Type": 1}], "ActorContextId": self.tenant_id,
            "InterSystemsId": correlation, "IntraSystemId": format!("{n:032x}"),
            "Target": [{"ID": format!("Group_{}", g.id), "Type": 2}, {"ID": g.id, "Type": 2},
                       {"ID": g.display_name, "Type": 1}],
            "TargetContextId": self.tenant_id
        });
        self.add_management_record(DIRECTORY_CONTENT, at, mgmt);
    }
}

/// The reason an audit record gives for a failed licence write: Microsoft's audit reason names no SKU, unlike the
/// API error the caller saw.
fn audit_reason(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("available licenses") {
        "The subscription does not have any available licenses.".into()
    } else if lower.contains("mutually exclusive") {
        "License assignment failed because of conflicting service plans.".into()
    } else if lower.contains("usage location") {
        "License assignment cannot be done for user with invalid usage location.".into()
    } else if message
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .any(|w| w.len() == 36 && w.chars().filter(|c| *c == '-').count() == 4)
    {
        "License assignment failed.".into()
    } else {
        message.to_string()
    }
}
