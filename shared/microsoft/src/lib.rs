//! licensewatch's outbound HTTP adapters behind the ports: Microsoft's APIs (tokens, the call loop and its quota
//! pacer, Graph, the Management Activity API, the Purview audit query API, doctor's probe), the credentials that
//! sign in to them, and the channels notices go out by (mail through Graph, Teams, Slack, signed webhooks, the
//! service desks).

pub mod auth;
pub mod credentials;
pub mod graph;
pub mod http;
pub mod mgmt;
pub mod notify;
pub mod pacer;
pub mod probe;
pub mod purview;
pub mod signing_keys;
pub mod tickets;

// The layers below under their own names, so that `crate::domain::...`, `crate::ports::...` read as in the core.
#[allow(unused_imports)]
pub(crate) use licensewatch_app::{error, ports};
#[allow(unused_imports)]
pub(crate) use licensewatch_domain::{cloud, config, domain, policy, secret, time_zone};
