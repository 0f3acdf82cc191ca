//! `licensewatch audit-search`: the archived audit trail, searched by user, operation, actor and time.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use licensewatch_core::domain::audit_search::AuditQuery;
use licensewatch_core::error::CoreError;
use licensewatch_core::usecases::search_audit::{AuditHit, SearchRequest, search_audit};

/// The command's options, as given.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// A user (UPN or object id) the record is about or was done by.
    #[arg(long)]
    pub user: Option<String>,
    /// The operation (`Update user.`, `Change user license`, `Add member to group`).
    #[arg(long)]
    pub operation: Option<String>,
    /// Who did it: a UPN, a user id, an app's name or app id.
    #[arg(long)]
    pub actor: Option<String>,
    /// `directory` (Entra directory audits) or `management` (Management Activity API).
    #[arg(long)]
    pub source: Option<String>,
    /// A content type (`directoryAudits`, `Audit.AzureActiveDirectory`, `Audit.Exchange`, ...).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Records at or after this time (RFC 3339, or a day YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Records before this time (RFC 3339, or a day YYYY-MM-DD: before that day starts).
    #[arg(long)]
    pub to: Option<String>,
    /// Oldest records first (default: newest first).
    #[arg(long)]
    pub oldest_first: bool,
    /// At most this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the matches as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

impl SearchArgs {
    /// The search these options ask for; a bad value names its option.
    pub(crate) fn request(&self) -> Result<SearchRequest, String> {
        let text = |flag: &str, v: &Option<String>| -> Result<Option<String>, String> {
            match v.as_deref().map(str::trim) {
                Some("") => Err(format!("--{flag} is empty")),
                other => Ok(other.map(str::to_string)),
            }
        };
        let source = match text("source", &self.source)?.as_deref() {
            None => None,
            Some("directory" | "directory_audit") => Some("directory_audit".to_string()),
            Some("management" | "management_api") => Some("management_api".to_string()),
            Some(other) => {
                return Err(format!(
                    "--source '{other}' is not 'directory' or 'management'"
                ));
            }
        };
        let from = time("from", text("from", &self.from)?)?;
        let to = time("to", text("to", &self.to)?)?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(format!("--from {f} is not before --to {t}"));
        }
        if self.limit == Some(0) {
            return Err("--limit 0 would return nothing".into());
        }
        Ok(SearchRequest {
            query: AuditQuery {
                user: text("user", &self.user)?,
                operation: text("operation", &self.operation)?,
                actor: text("actor", &self.actor)?,
                source,
                content_type: text("content-type", &self.content_type)?,
                from,
                to,
            },
            newest_first: !self.oldest_first,
            limit: self.limit,
        })
    }
}

/// RFC 3339, or a day (its start, UTC).
fn time(flag: &str, v: Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(v) = v else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&v) {
        return Ok(Some(t.to_utc()));
    }
    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| format!("--{flag} '{v}' is not an RFC 3339 time or a day YYYY-MM-DD"))
}

/// Runs the search: matches on stdout as they are found (one line each, or one JSON document a line with
/// `--json`), or into the CSV file; a summary on stderr.
pub(crate) async fn run(json: bool, args: SearchArgs) -> Result<(), String> {
    let request = args.request()?;
    let rt = crate::runtime(None).await?;
    let mut csv = match &args.csv {
        Some(path) => Some(csv_writer(path)?),
        None => None,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut emit = |hit: AuditHit| -> Result<(), CoreError> {
        let written = match (&mut csv, json) {
            (Some(w), _) => csv_row(w, &hit),
            (None, true) => serde_json::to_writer(&mut out, &hit)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            (None, false) => writeln!(out, "{}", line(&hit)),
        };
        written.map_err(|e| CoreError::BadInput(format!("cannot write the results: {e}")))
    };
    let stats = search_audit(rt.archive.as_ref(), &request, &mut emit)
        .await
        .map_err(|e| format!("{e} ({})", e.kind()))?;
    out.flush().map_err(|e| e.to_string())?;
    if let Some(mut w) = csv {
        w.flush().map_err(|e| e.to_string())?;
    }
    eprintln!(
        "licensewatch audit-search: {} match(es); {} object(s), {} ruled out by day, {} by index, {} read ({} records), {} index(es) rebuilt",
        stats.matches,
        stats.objects,
        stats.skipped_by_day,
        stats.skipped_by_index,
        stats.objects_read,
        stats.records_read,
        stats.indexes_rebuilt
    );
    Ok(())
}

fn line(hit: &AuditHit) -> String {
    format!(
        "{}  {}  by {}  on {}  [{}/{}]",
        hit.at.as_deref().unwrap_or("(no time)"),
        hit.operation.as_deref().unwrap_or("?"),
        hit.actors.first().map_or("?", String::as_str),
        if hit.subjects.is_empty() {
            "?".to_string()
        } else {
            hit.subjects.join(", ")
        },
        hit.source,
        hit.content_type
    )
}

fn csv_writer(path: &PathBuf) -> Result<csv::Writer<std::fs::File>, String> {
    let mut w = csv::Writer::from_path(path)
        .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    w.write_record([
        "at",
        "source",
        "content_type",
        "operation",
        "actors",
        "subjects",
        "object_key",
        "record",
    ])
    .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    Ok(w)
}

fn csv_row(w: &mut csv::Writer<std::fs::File>, hit: &AuditHit) -> std::io::Result<()> {
    w.write_record([
        hit.at.as_deref().unwrap_or(""),
        &hit.source,
        &hit.content_type,
        hit.operation.as_deref().unwrap_or(""),
        &hit.actors.join(" "),
        &hit.subjects.join(" "),
        &hit.object_key,
        hit.record.get(),
    ])
    .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SearchArgs {
        SearchArgs {
            user: None,
            operation: None,
            actor: None,
            source: None,
            content_type: None,
            from: None,
            to: None,
            oldest_first: false,
            limit: None,
            csv: None,
        }
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        let refused = |f: fn(&mut SearchArgs)| {
            let mut a = args();
            f(&mut a);
            a.request().expect_err("refused")
        };
        assert!(refused(|a| a.user = Some(" ".into())).contains("--user is empty"));
        assert!(refused(|a| a.source = Some("purview".into())).contains("--source 'purview'"));
        assert!(refused(|a| a.from = Some("yesterday".into())).contains("--from 'yesterday'"));
        assert!(
            refused(|a| {
                a.from = Some("2026-11-02".into());
                a.to = Some("2026-11-01".into());
            })
            .contains("is not before --to")
        );
        assert!(refused(|a| a.limit = Some(0)).contains("--limit 0"));
    }

    #[test]
    fn days_and_sources_read_as_documented() {
        let mut a = args();
        a.source = Some("management".into());
        a.from = Some("2026-11-01".into());
        a.to = Some("2026-11-02T12:00:00+02:00".into());
        a.oldest_first = true;
        let r = a.request().expect("valid");
        assert_eq!(r.query.source.as_deref(), Some("management_api"));
        assert_eq!(
            r.query.from,
            Some("2026-11-01T00:00:00Z".parse().expect("t"))
        );
        assert_eq!(r.query.to, Some("2026-11-02T10:00:00Z".parse().expect("t")));
        assert!(!r.newest_first);
    }
}
