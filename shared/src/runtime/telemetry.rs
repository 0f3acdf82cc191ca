//! Logging set-up: JSON lines for Lambda (CloudWatch), compact text on stderr for the CLI. Quiet unless
//! `RUST_LOG` (or `TEST_LOG=1` in tests) asks for more.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (Lambda).
    Json,
    /// Human-readable lines on stderr (CLI).
    Text,
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default_level);
    let _ = match format {
        LogFormat::Json => {
            tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stderr))
                .map_err(|e| e.to_string())
        }
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .compact()
                    .with_target(false),
            )
            .with(filter)
            .try_init()
            .map_err(|e| e.to_string()),
    };
}

/// `RUST_LOG` as `target=level` directives (`info`, `licensewatch_core=debug,warn`), else `default_level`. Plain
/// target filters need no regular-expression engine, which keeps a megabyte out of every Lambda binary.
pub(crate) fn log_filter(rust_log: Option<&str>, default_level: &str) -> Targets {
    let parse = |s: &str| s.trim().parse::<Targets>().ok();
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(parse)
        .or_else(|| parse(default_level))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// The Lambda log format: one JSON object per line, with the fields of the current span (the invocation's
/// request id and tenant) on every line.
pub(crate) fn json_subscriber<W>(
    filter: Targets,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .json()
                .with_current_span(true)
                .flatten_event(true)
                .with_target(false),
        )
        .with(filter)
}

/// The span every Lambda invocation runs in: its JSON log lines carry the request id and the tenant.
pub fn invocation_span(function: &str, request_id: &str, tenant: &str) -> tracing::Span {
    tracing::info_span!("invocation", function, request_id, tenant)
}

/// CloudWatch embedded-metric-format (EMF) metrics for one invocation: counts per metric name, with the function
/// and tenant as dimensions (plus an optional extra dimension such as a finding kind). Printed as JSON lines on
/// stdout, which CloudWatch Logs turns into metrics without any API call.
#[derive(Debug)]
pub struct Metrics {
    function: String,
    tenant: String,
    values: Vec<(Dimension, String, f64)>,
}

/// An extra dimension (name, value) beside `Function` and `Tenant`.
type Dimension = Option<(String, String)>;

/// The metrics namespace in CloudWatch.
pub(crate) const METRICS_NAMESPACE: &str = "licensewatch";

impl Metrics {
    /// Metrics of `function` for `tenant`.
    pub fn new(function: &str, tenant: &str) -> Self {
        Self {
            function: function.to_string(),
            tenant: tenant.to_string(),
            values: Vec::new(),
        }
    }

    /// Adds a count.
    pub fn count(&mut self, name: &str, value: usize) {
        self.values.push((None, name.to_string(), value as f64));
    }

    /// Adds a count under one more dimension (e.g. `Kind`).
    pub fn count_with(&mut self, name: &str, value: usize, dimension: (&str, &str)) {
        let extra = Some((dimension.0.to_string(), dimension.1.to_string()));
        self.values.push((extra, name.to_string(), value as f64));
    }

    /// The EMF documents, one per dimension set, at `timestamp_ms`.
    pub fn render(&self, timestamp_ms: i64) -> Vec<serde_json::Value> {
        let mut sets: Vec<Dimension> = Vec::new();
        for (d, _, _) in &self.values {
            if !sets.contains(d) {
                sets.push(d.clone());
            }
        }
        sets.into_iter()
            .map(|set| {
                // Two dimension sets: per tenant, and per function across tenants (what the alarms watch).
                let mut dims = vec!["Function".to_string(), "Tenant".to_string()];
                let mut across = vec!["Function".to_string()];
                let mut doc = serde_json::Map::new();
                doc.insert("Function".into(), self.function.clone().into());
                doc.insert("Tenant".into(), self.tenant.clone().into());
                if let Some((k, v)) = &set {
                    dims.push(k.clone());
                    across.push(k.clone());
                    doc.insert(k.clone(), v.clone().into());
                }
                let mut defs = Vec::new();
                for (d, name, value) in &self.values {
                    if *d == set {
                        defs.push(serde_json::json!({"Name": name, "Unit": "Count"}));
                        doc.insert(name.clone(), serde_json::json!(value));
                    }
                }
                doc.insert(
                    "_aws".into(),
                    serde_json::json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": METRICS_NAMESPACE,
                            "Dimensions": [dims, across],
                            "Metrics": defs,
                        }]
                    }),
                );
                serde_json::Value::Object(doc)
            })
            .collect()
    }

    /// Prints the documents on stdout when running in Lambda (or when `LICENSEWATCH_METRICS=emf`); elsewhere
    /// the CLI's own output stays clean.
    pub fn emit(&self) {
        let wanted = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var("LICENSEWATCH_METRICS").is_ok_and(|v| v == "emf");
        if !wanted || self.values.is_empty() {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        for doc in self.render(now) {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rust_log_directives_filter_by_target_and_a_bad_one_keeps_the_default() {
        use tracing::Level;
        let f = log_filter(Some("licensewatch_core=debug,warn"), "info");
        assert!(f.would_enable("licensewatch_core::usecases", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        let f = log_filter(Some("=bad=directive="), "info");
        assert!(f.would_enable("anything", &Level::INFO));
        assert!(!f.would_enable("anything", &Level::DEBUG));
        let f = log_filter(Some("  "), "error");
        assert!(
            !f.would_enable("anything", &Level::WARN),
            "blank is not a directive"
        );
    }

    #[test]
    fn lambda_log_lines_are_json_with_the_request_id_and_tenant() {
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = json_subscriber(log_filter(None, "info"), move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = invocation_span("license-check", "req-123", "tenant-abc");
            let _guard = span.enter();
            tracing::info!(users = 42, "license-check done");
        });
        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("one line")).expect("JSON");
        assert_eq!(line["message"], "license-check done");
        assert_eq!(line["users"], 42);
        assert_eq!(line["span"]["request_id"], "req-123");
        assert_eq!(line["span"]["tenant"], "tenant-abc");
        assert_eq!(line["span"]["function"], "license-check");
    }

    #[test]
    fn emf_documents_declare_every_metric_under_its_dimensions() {
        let mut m = Metrics::new("license-check", "t1");
        m.count("UsersScanned", 30);
        m.count_with("Findings", 2, ("Kind", "unlicensed_mailbox"));
        m.count_with("Findings", 1, ("Kind", "sku_capacity"));
        let docs = m.render(1_700_000_000_000);
        assert_eq!(docs.len(), 3);
        let plain = &docs[0];
        assert_eq!(plain["UsersScanned"], 30.0);
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function", "Tenant"], ["Function"]])
        );
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "licensewatch"
        );
        let kind = &docs[1];
        assert_eq!(kind["Kind"], "unlicensed_mailbox");
        assert_eq!(kind["Findings"], 2.0);
        assert_eq!(
            kind["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "Findings"
        );
        assert_eq!(docs[2]["Findings"], 1.0);
        assert_eq!(kind["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
