//! The Athena table in infra/template.yaml against the archive the adapters really write: audit-fetch archives the
//! simulated tenant into moto's S3, and every object must sit where the table's partition projection looks (every
//! partition value within its projected range), be gzip (by its name, as Athena decides), hold one JSON object a
//! line, and every declared column must name a field the records carry; the search indexes must lie outside every
//! projected location.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;

use chrono::Duration;
use licensewatch_core::usecases::fetch_audit::fetch_audit;
use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::helpers::*;

/// The template's `AWS::Glue::Table` input. CloudFormation's short tags (`!Sub`, `!Ref`) come back as tagged
/// values; `!Sub` strings are read as written.
fn table_input() -> Yaml {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .expect("infra/template.yaml");
    let template: Yaml = serde_yaml::from_str(&text).expect("YAML");
    let tables: Vec<&Yaml> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Glue::Table"))
        .collect();
    assert_eq!(tables.len(), 1, "one Glue table");
    tables[0]["Properties"]["TableInput"].clone()
}

fn text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(t) => text(&t.value),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

/// What partition projection allows for one key.
enum Projected {
    Values(Vec<String>),
    Range { low: i64, high: i64, digits: usize },
}

impl Projected {
    fn admits(&self, v: &str) -> bool {
        match self {
            Projected::Values(values) => values.iter().any(|x| x == v),
            Projected::Range { low, high, digits } => {
                v.len() >= *digits && v.parse::<i64>().is_ok_and(|n| (*low..=*high).contains(&n))
            }
        }
    }
}

fn projection(params: &Yaml, key: &str) -> Projected {
    let p = |name: &str| params[format!("projection.{key}.{name}").as_str()].clone();
    match text(&p("type")).as_str() {
        "enum" => Projected::Values(text(&p("values")).split(',').map(str::to_string).collect()),
        "integer" => {
            let range = text(&p("range"));
            let (low, high) = range.split_once(',').expect("range low,high");
            Projected::Range {
                low: low.trim().parse().expect("low"),
                high: high.trim().parse().expect("high"),
                digits: match p("digits") {
                    Yaml::Null => 1,
                    d => text(&d).parse().expect("digits"),
                },
            }
        }
        other => panic!("projection type {other} for {key}"),
    }
}

/// Matches `key` (bucket-relative) against the location template; returns the partition values.
fn partition_of(template: &str, bucket: &str, key: &str) -> Option<HashMap<String, String>> {
    let template = template.replace("${ArchiveBucket}", bucket);
    let rest = template.strip_prefix(&format!("s3://{bucket}/"))?;
    let mut values = HashMap::new();
    let mut key_parts = key.split('/');
    for part in rest.trim_end_matches('/').split('/') {
        let actual = key_parts.next()?;
        match part.strip_prefix("${!").and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                values.insert(name.to_string(), actual.to_string());
            }
            None if part == actual => {}
            None => return None,
        }
    }
    // Exactly one file name below the partition directory: Athena reads the files of that directory.
    (key_parts.count() == 1).then_some(values)
}

#[tokio::test]
async fn the_glue_table_reads_the_archive_the_adapters_write() {
    let table = table_input();
    let params = &table["Parameters"];
    assert_eq!(text(&params["projection.enabled"]), "true");
    let template = text(&params["storage.location.template"]);
    let keys: Vec<String> = table["PartitionKeys"]
        .as_sequence()
        .expect("PartitionKeys")
        .iter()
        .map(|k| text(&k["Name"]))
        .collect();
    assert_eq!(keys, ["source", "content_type", "year", "month", "day"]);
    let projected: HashMap<&str, Projected> = keys
        .iter()
        .map(|k| (k.as_str(), projection(params, k)))
        .collect();
    let storage = &table["StorageDescriptor"];
    assert_eq!(
        text(&storage["SerdeInfo"]["SerializationLibrary"]),
        "org.openx.data.jsonserde.JsonSerDe"
    );
    assert_eq!(
        text(&storage["SerdeInfo"]["Parameters"]["case.insensitive"]),
        "true"
    );
    let columns: Vec<String> = storage["Columns"]
        .as_sequence()
        .expect("Columns")
        .iter()
        .map(|c| text(&c["Name"]))
        .collect();

    // The archive as audit-fetch writes it to S3 (moto), from the simulated tenant's story.
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(licensewatch_core::policy::Policy::default(), &aws).await;
    env.advance(Duration::hours(13)).await;
    let report = fetch_audit(&env.rt.audit_deps(), &env.rt.policy)
        .await
        .expect("audit-fetch");
    assert!(report.records_archived > 0);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.conf)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&aws.bucket)
        .send()
        .await
        .expect("list");
    let mut fields = BTreeSet::new();
    let (mut objects, mut indexes, mut sources) = (0, 0, BTreeSet::new());
    for object in listed.contents() {
        let key = object.key().expect("key");
        if !key.starts_with("audit/") {
            continue; // state/ (snapshots, run records)
        }
        let Some(partition) = partition_of(&template, &aws.bucket, key) else {
            assert!(
                key.starts_with("audit/_index/"),
                "{key}: neither in a projected partition nor an index"
            );
            indexes += 1;
            continue;
        };
        for (name, value) in &partition {
            assert!(
                projected[name.as_str()].admits(value),
                "{key}: {name} = {value} is outside the projection"
            );
        }
        sources.insert(partition["source"].clone());
        assert!(
            key.ends_with(".gz"),
            "{key}: Athena detects gzip by the name"
        );
        let body = s3
            .get_object()
            .bucket(&aws.bucket)
            .key(key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let mut ndjson = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut ndjson)
            .expect("gzip");
        for line in ndjson.lines().filter(|l| !l.is_empty()) {
            let record: Value = serde_json::from_str(line).expect("one JSON record a line");
            let record = record.as_object().expect("an object");
            fields.extend(record.keys().map(|k| k.to_lowercase()));
        }
        objects += 1;
    }
    assert!(
        objects > 0 && indexes > 0,
        "{objects} objects, {indexes} indexes"
    );
    assert_eq!(
        sources,
        BTreeSet::from(["directory_audit".to_string(), "management_api".to_string()])
    );
    let unknown: Vec<&String> = columns.iter().filter(|c| !fields.contains(*c)).collect();
    assert!(
        unknown.is_empty(),
        "columns no archived record carries: {unknown:?} (fields: {fields:?})"
    );
}
