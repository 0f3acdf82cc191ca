//! Logging set-up: JSON lines for Lambda (CloudWatch), compact text on stderr for the CLI. Quiet unless
//! `RUST_LOG` (or `TEST_LOG=1` in tests) asks for more.

use tracing_subscriber::EnvFilter;

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
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .with_target(false)
            .try_init(),
        LogFormat::Text => builder.compact().with_target(false).try_init(),
    };
}
