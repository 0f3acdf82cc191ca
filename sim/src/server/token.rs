//! The token endpoints (v2.0 and v1) and the tenant's OpenID configuration.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

pub(super) fn issue_token(
    s: &Shared,
    tenant: &str,
    form: &HashMap<String, String>,
    aud_hint: &str,
) -> Result<(String, Aud, i64), Response> {
    let aad = |status: StatusCode, error: &str, code: &str, desc: &str| {
        (
            status,
            Json(json!({"error": error, "error_description": format!("{code}: {desc}"), "error_codes": [code.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)]})),
        )
            .into_response()
    };
    let Some(index) = s.tenant_index(tenant) else {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002",
            &format!("Tenant '{tenant}' not found."),
        ));
    };
    let t = s.tenant_at(index);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type; only client_credentials is simulated.",
        ));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144",
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    if secret.is_none() && assertion.is_none() {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000216",
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    }
    if let Some(a) = assertion
        && (form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || a.split('.').count() != 3)
    {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS50027",
            "JWT token is invalid or malformed.",
        ));
    }
    if let Some(a) = assertion {
        let certificates = t
            .app
            .as_ref()
            .map(|app| app.certificates.as_slice())
            .unwrap_or_default();
        // Entra takes either of the tenant's token endpoints as the audience.
        let endpoints = [
            format!("{}/{tenant}/oauth2/v2.0/token", s.base_url),
            format!("{}/{tenant}/oauth2/token", s.base_url),
        ];
        let checked = endpoints
            .iter()
            .map(|e| super::assertion::verify(a, client_id, e, certificates))
            .find(|r| r.is_ok())
            .unwrap_or_else(|| super::assertion::verify(a, client_id, &endpoints[0], certificates));
        if let Err(why) = checked {
            return Err(super::assertion::refused(why));
        }
    }
    if let Some(app) = &t.app {
        if !client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(aad(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "AADSTS700016",
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            ));
        }
        if let Some(sec) = secret
            && sec != &app.client_secret
        {
            return Err(aad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided.",
            ));
        }
    }
    let roles = t
        .behaviour
        .granted_permissions
        .as_ref()
        .map(|g| Arc::new(g.iter().cloned().collect::<std::collections::BTreeSet<_>>()));
    if t.consent_revoked {
        // The customer removed the app (or never consented): Entra has no service principal for it there.
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000229",
            &format!(
                "The client application {client_id} is missing service principal in the tenant {}.",
                t.tenant_id
            ),
        ));
    }
    // Entra randomises access-token lifetimes between 60 and 90 minutes.
    let lifetime = Duration::seconds(3600 + s.token_jitter(1800));
    let expires_at = t.now + lifetime;
    drop(t);
    let aud = if aud_hint.contains("manage") {
        Aud::Manage
    } else {
        Aud::Graph
    };
    let token = access_token(s, index, client_id, aud, roles.as_deref(), expires_at);
    s.tokens().insert(token.clone(), (aud, index));
    s.token_info()
        .insert(token.clone(), TokenInfo { roles, expires_at });
    Ok((token, aud, lifetime.num_seconds()))
}

/// An access token shaped as Entra's are (a JWT: header, claims, signature, base64url), carrying the claims a
/// client may read for diagnosis (`aud`, `tid`, `appid`, `roles`, `exp`); the signature is random, and the
/// simulator knows its tokens by their text.
fn access_token(
    s: &Shared,
    tenant: usize,
    client_id: &str,
    aud: Aud,
    roles: Option<&std::collections::BTreeSet<String>>,
    expires_at: DateTime<Utc>,
) -> String {
    let tid = s.tenant_at(tenant).tenant_id.clone();
    let (audience, roles): (&str, Vec<String>) = match aud {
        Aud::Graph => (
            "https://graph.microsoft.com",
            match roles {
                Some(r) => r.iter().cloned().collect(),
                None => super::permissions::DOCUMENTED
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            },
        ),
        Aud::Manage => (
            "https://manage.office.com",
            vec!["ActivityFeed.Read".into(), "ActivityFeed.ReadDlp".into()],
        ),
    };
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": "sim"});
    let claims = json!({"aud": audience, "iss": format!("https://sts.windows.net/{tid}/"), "tid": tid,
        "appid": client_id, "roles": roles, "exp": expires_at.timestamp(), "ver": "1.0"});
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
    )
}

/// The tenant's OpenID Connect discovery document: client libraries (MSAL) read the token endpoint from it.
pub(super) async fn openid_configuration(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Response {
    let Some(index) = s.tenant_index(&tenant) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")})),
        )
            .into_response();
    };
    let t = s.tenant_at(index);
    let base = format!("{}/{}", s.base_url, t.tenant_id);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{}/{}/discovery/v2.0/keys", s.base_url, t.tenant_id),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com"
    }))
    .into_response()
}

pub(super) async fn token_v2(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope.ends_with("/.default") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."})),
        )
            .into_response();
    }
    match issue_token(&s, &tenant, &form, &scope) {
        Ok((token, _, lifetime)) => Json(json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})).into_response(),
        Err(r) => r,
    }
}

pub(super) async fn token_v1(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let resource = form.get("resource").cloned().unwrap_or_default();
    if resource.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "AADSTS50001: The request body must contain the following parameter: 'resource'."})),
        )
            .into_response();
    }
    match issue_token(&s, &tenant, &form, &resource) {
        Ok((token, _, lifetime)) => {
            let now = Utc::now().timestamp();
            Json(json!({"token_type": "Bearer", "expires_in": lifetime.to_string(), "ext_expires_in": lifetime.to_string(),
                "expires_on": (now + lifetime).to_string(), "not_before": now.to_string(), "resource": resource, "access_token": token}))
            .into_response()
        }
        Err(r) => r,
    }
}
