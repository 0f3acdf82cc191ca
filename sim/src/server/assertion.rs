//! Certificate sign-in as Entra checks it: the client assertion is a JWT (RS256 or PS256) whose `aud` is the token
//! endpoint, `iss` and `sub` the client id, with `exp` ahead and `nbf` behind (real time, as Entra's); signed by a
//! certificate registered on the app (found by its `x5t#S256` thumbprint when the header carries one). An app with
//! no certificate registered (the simulator's default app) has everything but the signature checked.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use super::*;

/// Why Entra refuses an assertion: its AADSTS code and message.
type Refusal = (&'static str, &'static str);

const MALFORMED: Refusal = ("AADSTS50027", "JWT token is invalid or malformed.");
const AUDIENCE: Refusal = (
    "AADSTS50013",
    "Assertion audience claim does not match the required value.",
);
const TIME: Refusal = (
    "AADSTS700024",
    "Client assertion is not within its valid time range.",
);
const UNKNOWN_CERT: Refusal = (
    "AADSTS700027",
    "The certificate with identifier used to sign the client assertion is not registered on application.",
);
const SIGNATURE: Refusal = (
    "AADSTS700027",
    "Client assertion failed signature validation.",
);

#[derive(Debug, Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    sub: String,
    /// Seconds since the epoch (MSAL writes them with fractions).
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    jti: Option<String>,
}

/// Checks `assertion` for `client_id` at the token endpoint `endpoint` against the app's registered certificates
/// (PEM); `Err` is Entra's reason.
pub(super) fn verify(
    assertion: &str,
    client_id: &str,
    endpoint: &str,
    certificates: &[String],
) -> Result<(), Refusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| MALFORMED)?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256)
        || (header.x5t_s256.is_none() && header.x5t.is_none())
    {
        return Err(MALFORMED);
    }
    let claims = unverified_claims(assertion)?;
    if !claims
        .aud
        .trim_end_matches('/')
        .eq_ignore_ascii_case(endpoint)
    {
        return Err(AUDIENCE);
    }
    if !claims.iss.eq_ignore_ascii_case(client_id)
        || !claims.sub.eq_ignore_ascii_case(client_id)
        || claims.jti.as_deref().is_none_or(str::is_empty)
    {
        return Err(MALFORMED);
    }
    let now = Utc::now().timestamp() as f64;
    // Entra allows a few minutes of clock skew.
    if claims.exp + 300.0 < now || claims.nbf.is_some_and(|nbf| nbf - 300.0 > now) {
        return Err(TIME);
    }
    if certificates.is_empty() {
        return Ok(());
    }
    let ders: Vec<Vec<u8>> = certificates
        .iter()
        .filter_map(|pem| certificate_der(pem))
        .collect();
    let candidates: Vec<&Vec<u8>> = match &header.x5t_s256 {
        Some(thumbprint) => ders
            .iter()
            .filter(|der| URL_SAFE_NO_PAD.encode(Sha256::digest(der)) == *thumbprint)
            .collect(),
        None => ders.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(UNKNOWN_CERT);
    }
    // The claims are checked above (MSAL writes fractional times, which the library's own checks refuse): only
    // the signature is left to it.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let verified = candidates.iter().any(|der| {
        rsa_public_key(der).is_some_and(|key| {
            jsonwebtoken::decode::<serde_json::Value>(
                assertion,
                &DecodingKey::from_rsa_der(key),
                &validation,
            )
            .is_ok()
        })
    });
    if verified { Ok(()) } else { Err(SIGNATURE) }
}

fn unverified_claims(assertion: &str) -> Result<Claims, Refusal> {
    let payload = assertion.split('.').nth(1).ok_or(MALFORMED)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| MALFORMED)?;
    serde_json::from_slice(&bytes).map_err(|_| MALFORMED)
}

/// The DER of a PEM certificate.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

/// One DER element: its tag, its content and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSA public key (PKCS#1 DER) of an X.509 certificate: `tbsCertificate`'s `subjectPublicKeyInfo` bit string.
fn rsa_public_key(certificate: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = der_element(certificate)?;
    let (_, tbs, _) = der_element(cert)?;
    let mut rest = tbs;
    // An explicit version ([0]) may come first.
    if rest.first() == Some(&0xA0) {
        rest = der_element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_element(rest)?.2;
    }
    let (_, spki, _) = der_element(rest)?;
    let (_, bits, _) = der_element(der_element(spki)?.2)?;
    bits.split_first()
        .filter(|(unused, _)| **unused == 0)
        .map(|(_, key)| key)
}

/// Entra's answer to a refused assertion.
pub(super) fn refused((code, message): Refusal) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"error": "invalid_client", "error_description": format!("{code}: {message}"),
            "error_codes": [code.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)]}),
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "https://login.example/t/oauth2/v2.0/token";

    fn assertion(claims: Value) -> String {
        let header = URL_SAFE_NO_PAD
            .encode(r#"{"alg":"RS256","typ":"JWT","x5t":"PIbB6P-u27Xql8rlVYPDLfa2MAc="}"#);
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{claims}.c2lnbmF0dXJl")
    }

    fn claims(aud: &str, iss: &str, exp_in: f64) -> Value {
        let now = Utc::now().timestamp() as f64;
        json!({"aud": aud, "iss": iss, "sub": iss, "exp": now + exp_in, "iat": now, "jti": "j1"})
    }

    #[test]
    fn the_claims_are_checked_as_entra_checks_them() {
        let ok = assertion(claims(ENDPOINT, "app", 600.5));
        assert_eq!(
            verify(&ok, "app", ENDPOINT, &[]),
            Ok(()),
            "no certificate registered: claims only"
        );
        let elsewhere = assertion(claims(
            "https://login.example/other/oauth2/v2.0/token",
            "app",
            600.0,
        ));
        assert_eq!(verify(&elsewhere, "app", ENDPOINT, &[]), Err(AUDIENCE));
        let expired = assertion(claims(ENDPOINT, "app", -3600.0));
        assert_eq!(verify(&expired, "app", ENDPOINT, &[]), Err(TIME));
        let someone_else = assertion(claims(ENDPOINT, "other-app", 600.0));
        assert_eq!(verify(&someone_else, "app", ENDPOINT, &[]), Err(MALFORMED));
        assert_eq!(verify("not.a.jwt", "app", ENDPOINT, &[]), Err(MALFORMED));
    }

    #[test]
    fn a_registered_certificate_that_did_not_sign_is_refused() {
        let pem = include_str!("../../../shared/tests/fixtures/test-client-cert.pem");
        let cert = &pem[pem.find("-----BEGIN CERTIFICATE-----").expect("cert")..];
        let der = certificate_der(cert).expect("der");
        let key = rsa_public_key(&der).expect("the certificate's RSA key");
        assert_eq!(
            key.first(),
            Some(&0x30),
            "a PKCS#1 RSAPublicKey is a SEQUENCE"
        );
        // The fixture's header names it by SHA-1 (x5t): tried, and the made-up signature does not verify.
        let forged = assertion(claims(ENDPOINT, "app", 600.0));
        assert_eq!(
            verify(&forged, "app", ENDPOINT, &[cert.to_string()]),
            Err(SIGNATURE)
        );
    }
}
