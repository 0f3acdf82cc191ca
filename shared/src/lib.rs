//! licensewatch core: everything that is not Lambda glue.
//!
//! - [`config`], [`policy`], [`secret`], [`cloud`]: configuration from the environment and the policy file.
//! - [`auth`]: client-credentials tokens (secret or certificate) for Graph and the Management Activity API.
//! - [`retry`], [`http`]: the one retry policy and the call loop shared by the Microsoft clients.
//! - [`graph`], [`mgmt`]: Microsoft Graph and Management Activity API adapters.
//! - [`credentials`]: resolving configuration into a ready [`credentials::Microsoft`] (incl. Secrets Manager).
//! - [`domain`]: pure licensing rules (grace-period maths).
//! - [`clock`]: time as a port.
//! - [`store`], [`archive`], [`aws`]: durable state (SQLite locally; DynamoDB, S3 and SQS on AWS).
//! - [`error`]: [`error::CoreError`] with its retryable/permanent classification.

pub mod archive;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod graph;
pub mod http;
pub mod mgmt;
pub mod notify;
pub mod policy;
pub mod retry;
pub mod runtime;
pub mod secret;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod usecases;
pub mod webhook;
