//! `[check] cloud_licensing`: who waits for a seat, from Graph's beta `cloudLicensing` allotments and their
//! `waitingMembers` (one request, the waiting room expanded). Beta and global-cloud only, so anything but an answer
//! is said in the report and never fails the run.

use chrono::{DateTime, Utc};

use super::CheckDeps;
use crate::domain::findings::Finding;
use crate::domain::waiting_room::{Pool, findings};
use crate::error::ApiError;

/// The waiting-room findings, or why there are none to be had.
pub(super) async fn waiting_room(
    deps: &CheckDeps<'_>,
    now: DateTime<Utc>,
) -> (Vec<Finding>, Option<String>) {
    match deps.graph.allotments().await {
        Ok(allotments) => {
            let pools: Vec<Pool> = allotments
                .into_iter()
                .map(|a| Pool {
                    sku_id: a.sku_id,
                    sku_part_number: a.sku_part_number,
                    allotted: a.allotted_units,
                    consumed: a.consumed_units,
                    waiting_since: a
                        .waiting_members
                        .iter()
                        .map(|w| w.waiting_since_date_time)
                        .collect(),
                })
                .collect();
            (findings(&pools, now), None)
        }
        Err(e) => {
            let why = match &e {
                ApiError::Forbidden { .. } => {
                    "CloudLicensing.Read.All is not granted: grant it to see who waits for a seat ([check] cloud_licensing)"
                        .to_string()
                }
                other => format!(
                    "the beta cloudLicensing API did not answer ({other}); it exists in the global cloud only"
                ),
            };
            tracing::warn!("waiting room: {why}");
            (Vec::new(), Some(why))
        }
    }
}
