//! SKU and service-plan names from Microsoft's "Product names and service plan identifiers for licensing" CSV.
//! A copy is embedded; a newer file can be supplied. Stray whitespace (tabs, NBSP) in `String_Id` is trimmed.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};

/// The embedded copy of Microsoft's CSV, gzipped by `build.rs` (1 MB becomes about a tenth of it).
const EMBEDDED_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/licensing.csv.gz"));

/// Names by GUID. The embedded catalog is read on first use, not at start-up: most runs of a function never need a
/// name, and a cold start should not pay for parsing a megabyte of CSV.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    tables: Arc<OnceLock<Tables>>,
    /// Filled from the embedded CSV on first use (else it is empty, or was filled when parsed).
    embedded: bool,
}

#[derive(Debug, Default)]
struct Tables {
    skus: HashMap<String, SkuName>,
    plans: HashMap<String, String>,
}

/// A SKU's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuName {
    /// e.g. "Office 365 E3".
    pub display_name: String,
    /// e.g. "ENTERPRISEPACK".
    pub part_number: String,
}

fn clean(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}' || c == '\u{feff}')
        .to_string()
}

impl Catalog {
    /// The embedded catalog (read on first use).
    pub fn embedded() -> Self {
        static EMBEDDED: OnceLock<Catalog> = OnceLock::new();
        EMBEDDED
            .get_or_init(|| Catalog {
                tables: Arc::default(),
                embedded: true,
            })
            .clone()
    }

    fn tables(&self) -> &Tables {
        self.tables.get_or_init(|| {
            if !self.embedded {
                return Tables::default();
            }
            let mut text = String::new();
            // The embedded file is part of the build and covered by tests.
            let read = flate2::read::GzDecoder::new(EMBEDDED_GZ).read_to_string(&mut text);
            match read
                .map_err(|e| e.to_string())
                .and_then(|_| parse_tables(&text))
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "the embedded licensing catalog is unreadable");
                    Tables::default()
                }
            }
        })
    }

    /// Parses a licensing CSV (header `Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,...`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let tables = Arc::new(OnceLock::new());
        let _ = tables.set(parse_tables(text)?);
        Ok(Self {
            tables,
            embedded: false,
        })
    }

    /// The SKU's names, if known.
    pub fn sku(&self, sku_id: &str) -> Option<&SkuName> {
        self.tables().skus.get(&sku_id.to_ascii_lowercase())
    }

    /// A person-friendly SKU label: display name, else part number, else the GUID.
    pub fn sku_label(&self, sku_id: &str, part_number: &str) -> String {
        match self.sku(sku_id) {
            Some(n) if !n.display_name.is_empty() => n.display_name.clone(),
            _ if !part_number.is_empty() => part_number.to_string(),
            _ => sku_id.to_string(),
        }
    }

    /// A service plan's name, if known.
    pub fn plan(&self, plan_id: &str) -> Option<&str> {
        self.tables()
            .plans
            .get(&plan_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    #[cfg(test)] // only the tests read it
    /// Number of SKUs known.
    pub(crate) fn sku_count(&self) -> usize {
        self.tables().skus.len()
    }
}

fn parse_tables(text: &str) -> Result<Tables, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the CSV header: {e}"))?
        .iter()
        .map(clean)
        .collect();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("the CSV has no '{name}' column"))
    };
    let (display, string_id, guid) = (
        col("Product_Display_Name")?,
        col("String_Id")?,
        col("GUID")?,
    );
    let (plan_name, plan_id) = (col("Service_Plan_Name")?, col("Service_Plan_Id")?);
    let mut c = Tables::default();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 2))?;
        let get = |k: usize| row.get(k).map(clean).unwrap_or_default();
        let sku = get(guid).to_ascii_lowercase();
        if !sku.is_empty() {
            c.skus.entry(sku).or_insert_with(|| SkuName {
                display_name: get(display),
                part_number: get(string_id),
            });
        }
        let plan = get(plan_id).to_ascii_lowercase();
        if !plan.is_empty() {
            c.plans.entry(plan).or_insert_with(|| get(plan_name));
        }
    }
    if c.skus.is_empty() {
        return Err("the CSV lists no SKUs".into());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_knows_common_skus_and_plans() {
        let c = Catalog::embedded();
        assert!(c.sku_count() > 500, "{}", c.sku_count());
        let e3 = c.sku("6FD2C87F-B296-42F0-B197-1E91E994B900").expect("E3");
        assert_eq!(e3.part_number, "ENTERPRISEPACK");
        assert_eq!(e3.display_name, "Office 365 E3");
        assert_eq!(
            c.plan("efb87545-963c-4e0d-99df-69c6916d9eb0"),
            Some("EXCHANGE_S_ENTERPRISE")
        );
    }

    #[test]
    fn stray_whitespace_is_trimmed_and_missing_columns_are_named() {
        let c = Catalog::parse(
            "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id\nX,\"X_SKU\t\u{a0}\",11111111-1111-1111-1111-111111111111,P,22222222-2222-2222-2222-222222222222\n",
        )
        .expect("parses");
        assert_eq!(
            c.sku("11111111-1111-1111-1111-111111111111")
                .map(|s| s.part_number.as_str()),
            Some("X_SKU")
        );
        let err = Catalog::parse("Name,GUID\nx,y\n").expect_err("bad header");
        assert!(err.contains("Product_Display_Name"), "{err}");
    }
}
