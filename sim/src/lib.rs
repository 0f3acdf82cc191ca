//! A simulated Microsoft 365 tenant over real HTTP: the token endpoints, the parts of Microsoft Graph licensewatch
//! uses, and the Office 365 Management Activity API, on one port, plus a control API under `/_sim/` (clock, tenant
//! changes, fault injection, read-back of mail and licence writes). Shapes follow Microsoft's documentation.
//!
//! - [`scenario`]: scenario files, the default story, generated tenants.
//! - [`tenant`]: state and licensing rules (seats, all-or-none groups, conflicts, audit trail).
//! - `audit`: the audit records Microsoft writes for licence activity (directory audits and Management API).
//! - [`faults`]: injected faults.
//! - [`server`]: the HTTP routes.

mod audit;
pub mod faults;
pub mod scenario;
pub mod server;
pub mod tenant;
pub mod tls;

pub use scenario::Scenario;
pub use server::{SimHandle, start, start_fleet, start_tls};
pub use tls::TlsIdentity;
