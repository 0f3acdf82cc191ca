//! Pure licensing rules and types: no I/O, no clock of their own.

pub mod catalog;
pub mod findings;
pub mod grace;
pub mod license_event;
pub mod snapshot;
