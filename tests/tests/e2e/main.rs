//! Cross-function flows over real HTTP against the simulated tenant, with a temporary SQLite store.

mod audit;
mod handlers;
mod helpers;
mod license_check;
mod notify;
mod webhook;
