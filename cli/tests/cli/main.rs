//! The `licensewatch` command's integration tests, one binary (one link instead of four).

mod commands;
mod common;
mod concurrency;
mod demo_report;
mod endpoint;
mod statement;
