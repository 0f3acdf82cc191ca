//! `licensewatch serve`: the signed remediation endpoint on a local port, with an in-process worker draining the
//! local queue; and `licensewatch reprocess`, the worker run once from the command line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use licensewatch_core::ports::store::{Admitted, RemediationRecord, RemediationRequest};
use licensewatch_core::usecases::reprocess_user::process;
use licensewatch_core::usecases::webhook::{HttpRequest, MAX_BODY, handle, header_pairs};

pub(crate) use crate::endpoint_state::{App, Limits};

/// The HTTP endpoint: Graph's change notifications on their own path, every other path to the shared webhook
/// handler.
fn router_with(app: Arc<App>, limits: Limits) -> axum::Router {
    axum::Router::new()
        .route(
            crate::changes::PATH,
            axum::routing::any(crate::changes::route),
        )
        .fallback(endpoint)
        .layer(axum::Extension(limits))
        .with_state(app)
}

/// Serves until Ctrl-C.
pub(crate) async fn serve(
    port: u16,
    bind: &str,
    with_worker: bool,
    limits: Limits,
) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let changes = crate::endpoint_state::Changes::from_runtime(&rt, None).await?;
    // The webhook fails closed without a secret; a process serving only change notifications needs none.
    let auth = match (rt.webhook_auth(), &changes) {
        (Ok(auth), _) => Some(auth),
        (Err(_), Some(_)) => None,
        (Err(e), None) => return Err(e.to_string()),
    };
    let desks = rt.ticket_desks().map_err(|e| e.to_string())?;
    let app = Arc::new(App {
        rt,
        auth,
        changes,
        desks,
    });
    let addr: SocketAddr = format!("{bind}:{port}")
        .parse()
        .map_err(|_| format!("cannot bind {bind}:{port}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::json!({"base_url": format!("http://{local}")})
    );
    if with_worker {
        tokio::spawn(worker(app.clone()));
        tokio::spawn(crate::changes::worker(app.clone(), None));
    }
    if app.changes.is_some() {
        tokio::spawn(crate::changes::upkeep(app.clone()));
    }
    serve_with_limits(listener, app, limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

/// The accept loop: HTTP/1.1 with a header read timeout (which also closes idle keep-alive connections), a body
/// timeout in the handler, and a cap on connections served at once.
pub(crate) async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let router = router_with(app, limits);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            if let Err(e) = http
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop(slot);
        });
    }
}

async fn endpoint(
    State(app): State<Arc<App>>,
    axum::Extension(limits): axum::Extension<Limits>,
    req: Request,
) -> Response {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let refuse = |status: StatusCode, message: &str| {
        (status, axum::Json(serde_json::json!({"error": message}))).into_response()
    };
    // The limit applies while reading, so an oversized or endless body never fills memory; a body that does not
    // arrive in time, or is malformed (bad chunking), is refused as such.
    let read = http_body_util::Limited::new(body, MAX_BODY).collect();
    let bytes = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 64 KiB");
        }
        Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "malformed request body"),
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            );
        }
    };
    let headers = header_pairs(
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let request = HttpRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers,
        body: &bytes,
    };
    let Some(auth) = &app.auth else {
        return refuse(
            StatusCode::NOT_FOUND,
            "the remediation webhook is not configured (no webhook secret)",
        );
    };
    let resp = handle(&app.rt.webhook_deps(auth), &request).await;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(resp.body)).into_response()
}

/// One pass over the local queue: permanent outcomes are acknowledged, retryable failures wait for the next pass.
/// Returns (remediation id, status) of each request handled.
pub(crate) async fn drain_once(app: &App, http: &reqwest::Client) -> Vec<(String, String)> {
    let tenant = app.rt.tenant_run().tenant_id;
    let mut done = Vec::new();
    match app.rt.store.pending(&tenant).await {
        Ok(requests) => {
            for r in requests {
                let secret = app.auth.as_ref().and_then(|a| a.callback_secret());
                let mut deps = app.rt.worker_deps(http, secret);
                deps.desks = &app.desks;
                match process(&deps, &r, &app.rt.policy, false).await {
                    Ok(outcome) => {
                        tracing::info!(remediation = %r.remediation_id, status = %outcome.status, "remediation done");
                        let _ = app.rt.store.ack(&r.remediation_id).await;
                        done.push((r.remediation_id.clone(), outcome.status.to_string()));
                    }
                    Err(e) => {
                        tracing::warn!(remediation = %r.remediation_id, error = %e, "remediation will be retried")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the local queue"),
    }
    done
}

/// Drains the local queue forever.
async fn worker(app: Arc<App>) {
    let http = reqwest::Client::new();
    loop {
        drain_once(&app, &http).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How `licensewatch reprocess` may act.
pub(crate) struct ReprocessOptions {
    /// Show the Graph request; change nothing.
    pub dry_run: bool,
    /// Act even when the action budget is spent (logged).
    pub override_budget: bool,
}

/// `licensewatch reprocess`: one remediation, now, without the webhook, within the same rails: the policy
/// (`allow_remove`, `sku_allow_list`) always, the shared action budget unless explicitly overridden.
pub(crate) async fn reprocess(
    json: bool,
    user: String,
    action: String,
    sku_ids: Vec<String>,
    template_user: Option<String>,
    options: ReprocessOptions,
) -> Result<(), String> {
    let dry_run = options.dry_run;
    let rt = crate::runtime(None).await?;
    let action: licensewatch_core::domain::kinds::RemediationAction =
        action.parse().map_err(|e| format!("--action {e}"))?;
    if let Some(reason) =
        licensewatch_core::usecases::reprocess_user::policy_refusal(&rt.policy, action, &sku_ids)
    {
        return Err(format!("refused by the remediation policy: {reason}"));
    }
    let now = rt.clock.now();
    let request = RemediationRequest {
        remediation_id: format!("rem_{}", uuid::Uuid::new_v4().simple()),
        tenant_id: rt.tenant_run().tenant_id,
        user,
        action,
        sku_ids,
        reason: "licensewatch reprocess".into(),
        requested_at: now,
        disabled_plans: BTreeMap::new(),
        template_user,
        ticket: None,
    };
    if !dry_run {
        let record = RemediationRecord::queued(request.clone(), now);
        let max = rt.policy.remediation.max_actions_per_hour;
        match rt
            .store
            .admit(None, &record, max)
            .await
            .map_err(|e| e.to_string())?
        {
            Admitted::OverBudget if options.override_budget => {
                tracing::warn!(
                    remediation_id = %request.remediation_id,
                    max_actions_per_hour = max,
                    "the action budget is spent; acting anyway because of --override-budget"
                );
                eprintln!(
                    "licensewatch: remediation.max_actions_per_hour ({max}) is spent; acting anyway (--override-budget)"
                );
                rt.store.claim(&record).await.map_err(|e| e.to_string())?;
            }
            Admitted::OverBudget => {
                return Err(format!(
                    "remediation.max_actions_per_hour ({max}) is spent for the last 60 minutes; try later, or pass --override-budget"
                ));
            }
            _ => {}
        }
    }
    let http = reqwest::Client::new();
    let outcome = process(&rt.worker_deps(&http, None), &request, &rt.policy, dry_run)
        .await
        .map_err(|e| format!("{e} ({})", e.kind()))?;
    let doc = serde_json::json!({"remediation_id": request.remediation_id, "status": outcome.status, "detail": outcome.detail});
    if json {
        println!("{doc}");
    } else {
        println!(
            "{}: {}\n{}",
            request.remediation_id,
            outcome.status,
            serde_json::to_string_pretty(&outcome.detail).unwrap_or_default()
        );
    }
    if outcome.status == "failed" || outcome.status == "rejected" {
        return Err(format!("the remediation {} (see detail)", outcome.status));
    }
    Ok(())
}
