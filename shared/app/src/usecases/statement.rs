//! statement: a tenant's monthly licence statement from what the state store kept (every run's seat counts and
//! the licence events), and the scheduled run that publishes every customer's statement of a month as documents.

use crate::domain::catalog::Catalog;
use crate::domain::statement::{Month, Statement, StatementInput, build, pdf};
use crate::error::CoreError;
use crate::policy::Policy;
use crate::ports::documents::Documents;
use crate::ports::store::StateStore;

/// The ports a statement reads.
pub struct StatementDeps<'a> {
    /// Seat counts, licence events and the newest run (for part numbers).
    pub store: &'a dyn StateStore,
    /// SKU names.
    pub catalog: &'a Catalog,
}

/// `tenant_id`'s statement of `month`, priced by its policy's `[prices]`.
pub async fn statement(
    deps: &StatementDeps<'_>,
    tenant_id: &str,
    month: Month,
    policy: &Policy,
) -> Result<Statement, CoreError> {
    let policy = policy.for_tenant(tenant_id);
    let samples: Vec<_> = deps
        .store
        .seat_history(tenant_id, month.start())
        .await?
        .into_iter()
        // The SKUs' own counts; a licensing group's share is not a line of the statement.
        .filter(|s| s.group_id.is_none())
        .map(|s| (s.sku_id, s.point))
        .collect();
    let events = deps.store.license_events(tenant_id, None).await?;
    // Part numbers are what `[prices.monthly]` is usually keyed by; the newest run has every SKU's.
    let parts: Vec<(String, String)> = deps
        .store
        .runs(tenant_id, 1)
        .await?
        .into_iter()
        .flat_map(|r| r.skus)
        .map(|s| (s.sku_id, s.part_number))
        .collect();
    let part_of = |sku: &str| {
        parts
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(sku))
            .map_or("", |(_, p)| p.as_str())
    };
    let name = |sku: &str| deps.catalog.sku_label(sku, part_of(sku));
    let price = |sku: &str| {
        policy
            .price_of(part_of(sku))
            .or_else(|| policy.price_of(sku))
    };
    Ok(build(&StatementInput {
        tenant_id,
        month,
        samples: &samples,
        events: &events,
        name: &name,
        price: &price,
        currency: &policy.prices.currency,
    }))
}

/// The tenants a fleet's statements cover: the deployment's own, then each of `[[tenants]]` (once each).
pub fn fleet_tenants(policy: &Policy, home: &str) -> Vec<String> {
    let mut out = vec![home.to_string()];
    for t in &policy.tenants {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&t.id)) {
            out.push(t.id.clone());
        }
    }
    out
}

/// What a publishing run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    /// The month stated.
    pub month: String,
    /// Customers stated.
    pub tenants: usize,
    /// Documents written by this run.
    pub written: Vec<String>,
    /// Documents an earlier run had written (left as they were sent).
    pub already_there: usize,
}

/// Every tenant's statement of `month` as `{tenant}/{month}/skus.csv`, `changes.csv` and `statement.pdf`, then the
/// fleet's in one PDF and two CSVs under `fleet/{month}/`. Each document is written once: a retried, overlapping
/// or crashed run writes what is missing and leaves the rest as first sent.
pub async fn publish(
    deps: &StatementDeps<'_>,
    documents: &dyn Documents,
    tenants: &[String],
    month: Month,
    policy: &Policy,
) -> Result<Published, CoreError> {
    let mut out = Published {
        month: month.to_string(),
        tenants: tenants.len(),
        written: Vec::new(),
        already_there: 0,
    };
    let mut all = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let st = statement(deps, tenant, month, policy).await?;
        let dir = format!("{}/{month}", tenant.to_ascii_lowercase());
        let (skus, changes) = st.csv();
        let set = [
            ("skus.csv", skus.into_bytes()),
            ("changes.csv", changes.into_bytes()),
            ("statement.pdf", pdf(&[st.lines()])),
        ];
        put_all(documents, &mut out, &dir, set).await?;
        all.push(st);
    }
    let (skus, changes) = fleet_csv(&all);
    let pages: Vec<Vec<String>> = all.iter().map(Statement::lines).collect();
    let set = [
        ("skus.csv", skus.into_bytes()),
        ("changes.csv", changes.into_bytes()),
        ("statements.pdf", pdf(&pages)),
    ];
    put_all(documents, &mut out, &format!("fleet/{month}"), set).await?;
    Ok(out)
}

/// Writes each `(name, bytes)` under `dir`, in order, once.
async fn put_all(
    documents: &dyn Documents,
    out: &mut Published,
    dir: &str,
    set: [(&str, Vec<u8>); 3],
) -> Result<(), CoreError> {
    for (name, bytes) in set {
        put(documents, out, format!("{dir}/{name}"), bytes).await?;
    }
    Ok(())
}

async fn put(
    documents: &dyn Documents,
    out: &mut Published,
    key: String,
    bytes: Vec<u8>,
) -> Result<(), CoreError> {
    match documents.put_new(&key, bytes).await? {
        true => out.written.push(key),
        false => out.already_there += 1,
    }
    Ok(())
}

/// Many statements' CSVs as one pair: one header, every customer's rows (each row names its tenant).
pub fn fleet_csv(statements: &[Statement]) -> (String, String) {
    let mut skus = String::new();
    let mut changes = String::new();
    for (i, st) in statements.iter().enumerate() {
        let (s, c) = st.csv();
        let skip = |text: &str| match i {
            0 => text.to_string(),
            _ => text
                .split_once('\n')
                .map_or("", |(_, rows)| rows)
                .to_string(),
        };
        skus.push_str(&skip(&s));
        changes.push_str(&skip(&c));
    }
    (skus, changes)
}
