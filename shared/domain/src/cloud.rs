//! National clouds and their service roots (Graph, login authority, Management Activity API).

use std::fmt;
use std::str::FromStr;

use url::Url;

/// The Microsoft cloud a tenant lives in (`LICENSEWATCH_CLOUD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// Commercial cloud (also GCC moderate for Graph).
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// Microsoft 365 operated by 21Vianet.
    China,
}

/// The three service roots licensewatch talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Graph root, without `/v1.0` (e.g. `https://graph.microsoft.com`).
    pub graph: Url,
    /// Token authority root (e.g. `https://login.microsoftonline.com`).
    pub login: Url,
    /// Management Activity API root (e.g. `https://manage.office.com`).
    pub manage: Url,
}

impl Cloud {
    /// Accepted spellings, for error messages.
    pub(crate) const NAMES: &'static str = "global, usgov, usgovdod, china";

    /// Service roots from Microsoft's national-cloud deployment tables.
    pub fn endpoints(self) -> Endpoints {
        let (graph, login, manage) = match self {
            Cloud::Global => (
                "https://graph.microsoft.com",
                "https://login.microsoftonline.com",
                "https://manage.office.com",
            ),
            Cloud::UsGov => (
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us",
                "https://manage.office365.us",
            ),
            Cloud::UsGovDod => (
                "https://dod-graph.microsoft.us",
                "https://login.microsoftonline.us",
                "https://manage.protection.apps.mil",
            ),
            Cloud::China => (
                "https://microsoftgraph.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
                "https://manage.office.cn",
            ),
        };
        Endpoints {
            graph: fixed_url(graph),
            login: fixed_url(login),
            manage: fixed_url(manage),
        }
    }
}

fn fixed_url(s: &str) -> Url {
    // The literals above are valid URLs; a parse failure here is a programming error caught by tests.
    Url::parse(s).unwrap_or_else(|_| unreachable!("static URL {s} is valid"))
}

impl FromStr for Cloud {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "" => Ok(Cloud::Global),
            "usgov" => Ok(Cloud::UsGov),
            "usgovdod" => Ok(Cloud::UsGovDod),
            "china" => Ok(Cloud::China),
            other => Err(format!(
                "unknown cloud '{other}' (expected one of {})",
                Self::NAMES
            )),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_has_https_endpoints() {
        for c in [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China] {
            let e = c.endpoints();
            for u in [&e.graph, &e.login, &e.manage] {
                assert_eq!(u.scheme(), "https", "{c}: {u}");
            }
            assert_eq!(c.to_string().parse::<Cloud>(), Ok(c));
        }
        assert_eq!(
            Cloud::UsGovDod.endpoints().graph.as_str(),
            "https://dod-graph.microsoft.us/"
        );
    }

    #[test]
    fn unknown_cloud_is_rejected_with_the_valid_names() {
        let err = "azure-germany".parse::<Cloud>().unwrap_err();
        assert!(
            err.contains("azure-germany") && err.contains("usgovdod"),
            "{err}"
        );
    }
}
