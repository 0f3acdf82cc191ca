//! Cross-function flows over real HTTP against the simulated tenant, with a temporary SQLite store (or moto's DynamoDB, S3 and SQS in `aws`).

mod athena;
mod audit;
mod aws;
mod backfill;
mod crash;
mod delta;
mod doctor;
mod fleet;
mod forecast;
mod handlers;
mod helpers;
mod license_check;
mod mailbox_purpose;
mod notifications;
mod notify;
mod psa;
mod real_records;
mod reclaim;
mod search;
mod statement;
mod ticket_inbound;
mod tickets;
mod waiting_room;
mod webhook;
