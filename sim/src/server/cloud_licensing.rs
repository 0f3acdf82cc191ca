//! Graph's beta `cloudLicensing` API (global cloud only): `GET /beta/admin/cloudLicensing/allotments`, one allotment
//! per SKU here, with its `waitingMembers` only when `$expand`ed (a navigation property, as Graph does), and
//! `GET .../allotments/{id}/waitingMembers`. Shapes as Microsoft documents them (`@odata.type` on each object; the
//! waiting member's id is opaque and names no user). `CloudLicensing.Read.All` (or `Directory.Read.All`).

use super::*;
use crate::scenario::SkuSpec;

/// The allotment id of a SKU: a stable GUID of the tenant and SKU.
fn allotment_id(tenant_id: &str, sku_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("allotment|{tenant_id}|{sku_id}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn waiting(k: &SkuSpec) -> Vec<Value> {
    k.waiting_members
        .iter()
        .map(|w| {
            json!({"@odata.type": "#microsoft.graph.cloudLicensing.waitingMember", "id": w.id,
                "waitingSinceDateTime": w.since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)})
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct AllotmentQuery {
    #[serde(rename = "$expand")]
    expand: Option<String>,
}

/// `GET /beta/admin/cloudLicensing/allotments`.
pub(super) async fn allotments(
    State(s): State<Arc<Shared>>,
    Query(q): Query<AllotmentQuery>,
) -> Response {
    let t = s.tenant();
    let expand = q
        .expand
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("waitingmembers"));
    let value: Vec<Value> = t
        .skus
        .iter()
        .map(|k| {
            let mut a = json!({"@odata.type": "#microsoft.graph.cloudLicensing.allotment",
                "id": allotment_id(&t.tenant_id, &k.sku_id), "allottedUnits": k.enabled,
                "assignableTo": "user,group", "consumedUnits": t.consumed(&k.sku_id),
                "skuId": k.sku_id, "skuPartNumber": k.sku_part_number,
                "services": k.service_plans.iter().map(|p| json!({"@odata.type": "microsoft.graph.cloudLicensing.service",
                    "assignableTo": "user,group", "planId": p.id, "planName": p.name})).collect::<Vec<_>>()});
            if expand {
                a["waitingMembers"] = Value::Array(waiting(k));
            }
            a
        })
        .collect();
    Json(json!({"@odata.context": format!("{}/beta/$metadata#admin/cloudLicensing/allotments", s.base_url), "value": value}))
        .into_response()
}

/// `GET /beta/admin/cloudLicensing/allotments/{id}/waitingMembers`.
pub(super) async fn waiting_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let t = s.tenant();
    match t
        .skus
        .iter()
        .find(|k| allotment_id(&t.tenant_id, &k.sku_id).eq_ignore_ascii_case(&id))
    {
        Some(k) => Json(json!({"@odata.context": format!("{}/beta/$metadata#admin/cloudLicensing/allotments('{id}')/waitingMembers", s.base_url),
            "value": waiting(k)}))
        .into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("Allotment '{id}' was not found."),
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct CtlWaiting {
    members: Vec<crate::scenario::WaitingSpec>,
}

/// `POST /_sim/skus/{id}/waiting {"members": [{"id", "since"}]}`: the SKU's waiting room, replaced.
pub(super) async fn ctl_waiting(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlWaiting>,
) -> Response {
    let mut t = s.tenant();
    match t
        .skus
        .iter_mut()
        .find(|k| k.sku_id.eq_ignore_ascii_case(&id) || k.sku_part_number == id)
    {
        Some(k) => {
            k.waiting_members = b.members;
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no SKU {id}")})),
        )
            .into_response(),
    }
}
