//! The time zone dates are shown to people in (`[tenant].time_zone`, `[[tenants]].time_zone`): an IANA name, read
//! once and kept with its rules. Microsoft's deadlines are instants; only what people read is local.
//!
//! Backed by jiff with the IANA database bundled (about 200 KB, the same on every machine), rather than a
//! database compiled into code, which cost grace-period-notify 1.7 MB.

use chrono::{DateTime, Utc};

/// A named time zone.
#[derive(Clone, Debug)]
pub struct TimeZone {
    name: String,
    rules: jiff::tz::TimeZone,
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZone {}

impl TimeZone {
    /// UTC.
    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            rules: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone with this IANA name (e.g. `Europe/Berlin`), or why it cannot be used.
    pub fn named(name: &str) -> Result<Self, String> {
        let unknown = || format!("'{name}' is not an IANA time zone (e.g. Europe/Berlin)");
        if name.trim().is_empty() || name != name.trim() {
            return Err(unknown());
        }
        let rules = jiff::tz::db().get(name).map_err(|_| unknown())?;
        Ok(Self {
            name: name.to_string(),
            rules,
        })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `t` in this zone, formatted with strftime directives (`%Y-%m-%d %H:%M %Z`; `%Z` is the abbreviation in
    /// force then, e.g. NZDT).
    pub fn format(&self, t: &DateTime<Utc>, format: &str) -> String {
        let nanos = i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0);
        match jiff::Timestamp::new(t.timestamp(), nanos) {
            Ok(ts) => ts.to_zoned(self.rules.clone()).strftime(format).to_string(),
            // Outside jiff's range (years beyond ±9999): say so in UTC rather than fail a notice.
            Err(_) => t.format(format).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn local_times_and_abbreviations_follow_the_zone_rules() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .single()
            .expect("time");
        let auckland = TimeZone::named("Pacific/Auckland").expect("zone");
        assert_eq!(
            auckland.format(&t, "%Y-%m-%d %H:%M %Z"),
            "2026-11-23 23:00 NZDT"
        );
        let winter = Utc
            .with_ymd_and_hms(2026, 7, 1, 10, 0, 0)
            .single()
            .expect("time");
        assert_eq!(auckland.format(&winter, "%H:%M %Z"), "22:00 NZST");
        assert_eq!(
            TimeZone::utc().format(&t, "%A %Y-%m-%d %H:%M %Z"),
            "Monday 2026-11-23 10:00 UTC"
        );
        assert_eq!(TimeZone::named("UTC").expect("utc"), TimeZone::utc());
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        assert_eq!(
            TimeZone::named("Mars/Olympus").unwrap_err(),
            "'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)"
        );
        assert!(TimeZone::named("").is_err());
        assert!(TimeZone::named(" Europe/Berlin").is_err());
    }
}
