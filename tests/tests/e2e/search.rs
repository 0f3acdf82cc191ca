//! audit-search over an archive audit-fetch wrote from the simulated tenant (a directory, and S3 in moto): the
//! matches equal a brute-force scan of every archived record, in order; the per-object indexes rule objects out; a
//! deleted index is rebuilt and the answer does not change.

use chrono::{DateTime, Duration, Utc};
use licensewatch_core::domain::audit_search::AuditQuery;
use licensewatch_core::ports::archive::{AuditArchive, decode_batch, index_key};
use licensewatch_core::usecases::fetch_audit::fetch_audit;
use licensewatch_core::usecases::search_audit::{SearchRequest, SearchStats, search_audit};
use serde_json::{Value, json};

use crate::helpers::*;

const USERS: usize = 40;

fn user(n: usize) -> String {
    upn(&format!("srch.user{:02}", n % USERS))
}

fn user_id(n: usize) -> String {
    format!("5e000000-0000-4000-8000-{:012}", n % USERS)
}

fn actor(n: usize) -> String {
    upn(["srch.admin", "srch.helpdesk", "srch.owner"][n % 3])
}

/// Directory audits and Management API records over two days, by three actors, about forty users, in the shapes
/// Microsoft writes (REAL_RECORDS.md).
fn records(now: DateTime<Utc>) -> (Vec<Value>, Vec<Value>) {
    let at = |n: usize| now - Duration::minutes(5 * n as i64 + 90);
    let directory = (0..300)
        .map(|n| {
            let op = ["Update user", "Add member to group", "Reset user password"][n % 3];
            json!({"id": format!("Directory_srch_{n:05}"), "category": "UserManagement",
                "correlationId": format!("c1000000-0000-4000-8000-{n:012}"), "result": "success",
                "activityDisplayName": op,
                "activityDateTime": format!("{}.1234567Z", at(2 * n).format("%Y-%m-%dT%H:%M:%S")),
                "loggedByService": "Core Directory", "operationType": "Update",
                "initiatedBy": {"user": {"id": null, "userPrincipalName": actor(n)}, "app": null},
                "targetResources": [{"id": user_id(n), "userPrincipalName": user(n), "type": "User",
                    "modifiedProperties": []}],
                "additionalDetails": []})
        })
        .collect();
    let management = (0..300)
        .map(|n| {
            let op = ["UserLoggedIn", "Update group.", "Reset user password."][n % 3];
            json!({"CreationTime": at(2 * n + 1).format("%Y-%m-%dT%H:%M:%S").to_string(),
                "Id": format!("c7b50000-0000-4000-8000-{n:012}"), "Operation": op, "RecordType": 8,
                "ResultStatus": "Success", "Workload": "AzureActiveDirectory", "UserId": actor(n),
                "Actor": [{"ID": actor(n), "Type": 5}], "ObjectId": user(n),
                "Target": [{"ID": format!("User_{}", user_id(n)), "Type": 2}, {"ID": user(n), "Type": 5}],
                "ModifiedProperties": []})
        })
        .collect();
    (directory, management)
}

async fn archive_records(env: &TestEnv) {
    let (directory, management) = records(env.now());
    assert_eq!(
        env.control(
            "/_sim/audit/records",
            json!({"directory": directory, "management": management}),
        )
        .await,
        201
    );
    // Microsoft publishes Management API blobs up to 12 hours late (the simulator too).
    env.advance(Duration::hours(13)).await;
    let report = fetch_audit(&env.rt.audit_deps(), &env.rt.policy)
        .await
        .expect("audit-fetch");
    assert!(report.records_archived >= 600, "{report:?}");
}

/// Every archived record with its source, content type and time, read object by object without any index.
async fn everything(archive: &dyn AuditArchive) -> Vec<(String, String, String, Value)> {
    let mut all = Vec::new();
    for key in archive.keys("").await.expect("keys") {
        let parts: Vec<&str> = key.split('/').collect();
        for r in decode_batch(&archive.get(&key).await.expect("object")).expect("decode") {
            let at = r["CreationTime"]
                .as_str()
                .or(r["activityDateTime"].as_str())
                .map(|t| t[..19].to_string())
                .unwrap_or_default();
            all.push((parts[0].to_string(), parts[1].to_string(), at, r));
        }
    }
    all
}

/// The brute-force answer: each record's fields compared as the README describes the options.
fn brute_force(all: &[(String, String, String, Value)], q: &AuditQuery) -> Vec<String> {
    let lower = |v: &Value| v.as_str().map(str::to_lowercase);
    let strip = |s: String| s.strip_prefix("user_").map(str::to_string).unwrap_or(s);
    let mut found: Vec<(String, String)> = all
        .iter()
        .filter(|(source, ct, at, r)| {
            let mut actors: Vec<String> =
                [&r["UserId"], &r["initiatedBy"]["user"]["userPrincipalName"]]
                    .into_iter()
                    .filter_map(lower)
                    .collect();
            actors.extend(
                r["Actor"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| lower(&a["ID"])),
            );
            let mut subjects: Vec<String> =
                [&r["ObjectId"]].into_iter().filter_map(lower).collect();
            subjects.extend(
                r["Target"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| lower(&t["ID"]).map(strip)),
            );
            for t in r["targetResources"].as_array().into_iter().flatten() {
                subjects.extend(
                    [lower(&t["id"]), lower(&t["userPrincipalName"])]
                        .into_iter()
                        .flatten(),
                );
            }
            let op = r["Operation"]
                .as_str()
                .or(r["activityDisplayName"].as_str())
                .map(|o| o.trim_end_matches('.').to_lowercase());
            let time = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
            q.source.as_ref().is_none_or(|s| s == source)
                && q.content_type.as_ref().is_none_or(|c| c == ct)
                && q.user.as_ref().is_none_or(|u| {
                    let u = u.to_lowercase();
                    subjects.contains(&u) || actors.contains(&u)
                })
                && q.actor
                    .as_ref()
                    .is_none_or(|a| actors.contains(&a.to_lowercase()))
                && q.operation.as_ref().is_none_or(|o| {
                    op.as_deref() == Some(o.trim_end_matches('.').to_lowercase().as_str())
                })
                && q.from.is_none_or(|f| !at.is_empty() && *at >= time(f))
                && q.to.is_none_or(|t| !at.is_empty() && *at < time(t))
        })
        .map(|(_, _, at, r)| {
            let id = r["Id"].as_str().or(r["id"].as_str()).unwrap_or_default();
            (at.clone(), id.to_string())
        })
        .collect();
    found.sort();
    found.reverse();
    found.into_iter().map(|(_, id)| id).collect()
}

/// Records of the same second may come in any order: the ids in the order of (time, id), newest first, after
/// checking that the times never go up.
fn in_time_order(found: Vec<(String, String)>) -> Vec<String> {
    assert!(found.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
    let mut found = found;
    found.sort();
    found.reverse();
    found.into_iter().map(|(_, id)| id).collect()
}

async fn search(archive: &dyn AuditArchive, q: &AuditQuery) -> (Vec<String>, SearchStats) {
    let mut ids = Vec::new();
    let request = SearchRequest {
        query: q.clone(),
        newest_first: true,
        limit: None,
    };
    let stats = search_audit(archive, &request, &mut |hit| {
        let r: Value = serde_json::from_str(hit.record.get()).expect("record");
        let id = r["Id"].as_str().or(r["id"].as_str()).unwrap_or_default();
        ids.push((hit.at.clone().unwrap_or_default(), id.to_string()));
        Ok(())
    })
    .await
    .expect("search");
    (in_time_order(ids), stats)
}

fn queries(now: DateTime<Utc>) -> Vec<AuditQuery> {
    let q = AuditQuery::default;
    vec![
        AuditQuery {
            user: Some(user(7)),
            ..q()
        },
        AuditQuery {
            user: Some(user_id(12).to_uppercase()),
            ..q()
        },
        AuditQuery {
            user: Some(user(3)),
            operation: Some("Reset user password".into()),
            ..q()
        },
        AuditQuery {
            actor: Some(actor(1)),
            source: Some("management_api".into()),
            ..q()
        },
        AuditQuery {
            actor: Some(actor(2).to_uppercase()),
            operation: Some("Update user".into()),
            ..q()
        },
        AuditQuery {
            from: Some(now - Duration::hours(40)),
            to: Some(now - Duration::hours(30)),
            ..q()
        },
        AuditQuery {
            user: Some(user(9)),
            content_type: Some("directoryAudits".into()),
            from: Some(now - Duration::hours(20)),
            ..q()
        },
        AuditQuery {
            user: Some("nobody@contoso.onmicrosoft.com".into()),
            ..q()
        },
    ]
}

async fn searches_equal_brute_force(env: &TestEnv) {
    let archive = env.rt.archive.as_ref();
    let all = everything(archive).await;
    assert!(all.len() >= 600);
    for q in queries(env.now()) {
        let expected = brute_force(&all, &q);
        let (found, stats) = search(archive, &q).await;
        if found != expected {
            let missing: Vec<&String> = expected.iter().filter(|id| !found.contains(id)).collect();
            let extra: Vec<&String> = found.iter().filter(|id| !expected.contains(id)).collect();
            let first = found.iter().zip(&expected).position(|(a, b)| a != b);
            let i = first.unwrap_or(0);
            panic!(
                "{q:?}: {stats:?}: missing {missing:?}, extra {extra:?}, first difference at {first:?}: {:?} vs {:?}",
                &found[i.saturating_sub(2)..i + 4],
                &expected[i.saturating_sub(2)..i + 4]
            );
        }
        assert_eq!(stats.indexes_rebuilt, 0, "audit-fetch wrote every index");
    }
    // A user's records: the ones generated about them (every 40th of each source), plus none from elsewhere.
    let (found, stats) = search(archive, &queries(env.now())[0]).await;
    assert!(
        stats.skipped_by_index > stats.objects / 2 && stats.objects_read < stats.objects / 2,
        "the indexes rule most objects out: {stats:?}"
    );
    let generated = (0..300).filter(|n| n % USERS == 7).count();
    assert_eq!(found.len(), 2 * generated, "{found:?}");

    // The newest first, at most three, and the oldest first.
    let mut newest = Vec::new();
    let limited = SearchRequest {
        query: queries(env.now())[0].clone(),
        newest_first: true,
        limit: Some(3),
    };
    search_audit(archive, &limited, &mut |hit| {
        newest.push(hit.at.clone());
        Ok(())
    })
    .await
    .expect("search");
    assert_eq!(newest.len(), 3);
    assert!(newest.windows(2).all(|w| w[0] >= w[1]), "{newest:?}");
}

async fn a_deleted_index_is_rebuilt(env: &TestEnv, delete: impl AsyncFnOnce(&str)) {
    let archive = env.rt.archive.as_ref();
    let q = queries(env.now())[0].clone();
    let (before, _) = search(archive, &q).await;
    let key = archive.keys("management_api/").await.expect("keys")[0].clone();
    delete(&index_key(&key)).await;
    let (after, stats) = search(archive, &q).await;
    assert_eq!(after, before);
    assert_eq!(stats.indexes_rebuilt, 1, "{stats:?}");
    let again = search(archive, &q).await.1;
    assert_eq!(
        again.indexes_rebuilt, 0,
        "the rebuilt index was stored: {again:?}"
    );
    assert!(
        archive
            .index_keys("")
            .await
            .expect("indexes")
            .contains(&index_key(&key)),
        "index back in place"
    );
}

#[tokio::test]
async fn search_over_a_local_archive_equals_a_brute_force_scan() {
    let env = TestEnv::spawn().await;
    archive_records(&env).await;
    searches_equal_brute_force(&env).await;
    let root = env.archive_dir();
    a_deleted_index_is_rebuilt(&env, async |key| {
        std::fs::remove_file(root.join(key)).expect("index file");
    })
    .await;
}

#[tokio::test]
async fn search_over_an_s3_archive_equals_a_brute_force_scan() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(licensewatch_core::policy::Policy::default(), &aws).await;
    archive_records(&env).await;
    searches_equal_brute_force(&env).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.conf)
            .force_path_style(true)
            .build(),
    );
    a_deleted_index_is_rebuilt(&env, async |key| {
        s3.delete_object()
            .bucket(&aws.bucket)
            .key(format!("audit/{key}"))
            .send()
            .await
            .expect("delete the index");
    })
    .await;
}
