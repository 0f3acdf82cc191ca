//! Request signing: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over
//! `id.timestamp.body`, `whsec_` secrets), GitHub's `X-Hub-Signature-256: sha256=<hex>` (Jira Cloud sends the same
//! value under `X-Hub-Signature`), ConnectWise PSA's `x-content-signature` (base64 HMAC-SHA256 keyed with the
//! SHA-256 of its signing key), Autotask's `x-hook-signature` (base64 HMAC-SHA1) and a fixed shared secret.
//! Comparisons are constant-time; secrets print as `[REDACTED]`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A Standard Webhooks secret (the bytes after `whsec_`, base64-decoded).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is empty, not base64, or shorter than 24 bytes.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(&'static str),
    /// A required header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header appears twice with different values.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// `webhook-id` is too long or holds characters that break the signed framing.
    #[error("invalid webhook-id")]
    InvalidId,
    /// `webhook-timestamp` is not integer seconds.
    #[error("invalid webhook-timestamp")]
    InvalidTimestamp,
    /// The timestamp is further in the past than the tolerance.
    #[error("webhook-timestamp too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("webhook-timestamp in the future")]
    TimestampInFuture,
    /// No signature matched.
    #[error("signature does not match")]
    Mismatch,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (the prefix and base64 padding are optional).
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        if b64.is_empty() {
            return Err(SignatureError::InvalidSecret("empty"));
        }
        let bytes = STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64.trim_end_matches('=')))
            .map_err(|_| SignatureError::InvalidSecret("not base64"))?;
        if bytes.len() < 24 {
            return Err(SignatureError::InvalidSecret("shorter than 24 bytes"));
        }
        Ok(Self(bytes))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(msg_id, timestamp, body)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length; the error branch cannot happen.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("any key length"));
        m.update(msg_id.as_bytes());
        m.update(b".");
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        m.finalize().into_bytes().to_vec()
    }
}

/// The three Standard Webhooks headers, as received (each `None` when absent).
#[derive(Debug, Default, Clone)]
pub struct StandardHeaders<'a> {
    /// `webhook-id`
    pub id: Option<&'a str>,
    /// `webhook-timestamp`
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`
    pub signature: Option<&'a str>,
}

/// Verifies a Standard Webhooks request against any of `secrets` (rotation). Returns the index of the matching
/// secret. The timestamp is checked first, with checked arithmetic, so stale or absurd values never reach HMAC.
pub fn verify_standard(
    secrets: &[WebhookSecret],
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<usize, SignatureError> {
    let id = headers
        .id
        .ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let ts = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let sig = headers
        .signature
        .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    if id.is_empty()
        || id.len() > 256
        || id.contains('.')
        || !id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(SignatureError::InvalidId);
    }
    // Integer seconds written the one way a sender writes them: digits, no sign, no leading zero.
    if ts.is_empty()
        || !ts.bytes().all(|b| b.is_ascii_digit())
        || (ts.len() > 1 && ts.starts_with('0'))
    {
        return Err(SignatureError::InvalidTimestamp);
    }
    let ts: i64 = ts.parse().map_err(|_| SignatureError::InvalidTimestamp)?;
    let age = now
        .checked_sub(ts)
        .ok_or(SignatureError::InvalidTimestamp)?;
    if age > tolerance_seconds {
        return Err(SignatureError::TimestampTooOld);
    }
    if age < -tolerance_seconds {
        return Err(SignatureError::TimestampInFuture);
    }
    let candidates: Vec<Vec<u8>> = sig
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched: Option<usize> = None;
    // Every secret is tried against every candidate, without early exit, so timing does not reveal which matched.
    for (i, secret) in secrets.iter().enumerate() {
        let expected = secret.mac(id, ts, body);
        for c in &candidates {
            let ok: bool = (c.len() == expected.len()) && bool::from(c.as_slice().ct_eq(&expected));
            if ok && matched.is_none() {
                matched = Some(i);
            }
        }
    }
    matched.ok_or(SignatureError::Mismatch)
}

/// `sha256=<hex HMAC-SHA256 of body>` with the secret's UTF-8 bytes (GitHub, Jira).
pub fn sign_hub(secret: &[u8], body: &[u8]) -> String {
    let hex: String = hmac_sha256(secret, body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Verifies an `X-Hub-Signature-256` header exactly (lower-case hex with the `sha256=` prefix).
pub fn verify_hub(secret: &[u8], header: &str, body: &[u8]) -> Result<(), SignatureError> {
    if same(header, &sign_hub(secret, body)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// True when `presented` equals `expected`, in time that does not depend on where they differ.
fn same(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// ConnectWise PSA's `x-content-signature`: base64 of HMAC-SHA256 over the raw body, keyed with the SHA-256 digest
/// of the callback's signing key (the key its `Metadata.key_url` serves).
pub fn sign_connectwise(signing_key: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let key = Sha256::digest(signing_key.as_bytes());
    STANDARD.encode(hmac_sha256(&key, body))
}

/// Verifies ConnectWise's `x-content-signature` exactly.
pub fn verify_connectwise(
    signing_key: &str,
    header: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    if same(header.trim(), &sign_connectwise(signing_key, body)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Autotask's `x-hook-signature`: base64 of HMAC-SHA1 over the raw body with the webhook's secret key.
pub fn sign_autotask(secret: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("any key length"));
    m.update(body);
    STANDARD.encode(m.finalize().into_bytes())
}

/// Verifies Autotask's `x-hook-signature`, with or without a `sha1=` prefix.
pub fn verify_autotask(secret: &[u8], header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let presented = header.trim();
    let presented = presented.strip_prefix("sha1=").unwrap_or(presented);
    if same(presented, &sign_autotask(secret, body)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A fixed secret header (Jira Automation, HaloPSA, ServiceNow REST messages cannot compute an HMAC): the value must
/// equal the secret, or `Bearer <secret>` in an `Authorization` header. Weaker than a signature: the body is not
/// covered, and whoever sees one request can send others.
pub fn verify_shared_secret(secret: &str, presented: &str) -> Result<(), SignatureError> {
    let presented = presented.trim();
    let bare = presented
        .strip_prefix("Bearer ")
        .or_else(|| presented.strip_prefix("bearer "))
        .unwrap_or(presented);
    if same(presented, secret) || same(bare, secret) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published Standard Webhooks vectors (RELIABILITY_CASES.md section 2, A and B).
    const A_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const A_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const A_TS: i64 = 1614265330;
    const A_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const A_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> StandardHeaders<'a> {
        StandardHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn published_vectors_sign_and_verify() {
        let a = WebhookSecret::parse(A_KEY).expect("secret");
        assert_eq!(a.sign(A_ID, A_TS, A_BODY), A_SIG);
        let b = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret");
        assert_eq!(
            b.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        let ts = A_TS.to_string();
        assert_eq!(
            verify_standard(
                std::slice::from_ref(&a),
                &headers(A_ID, &ts, A_SIG),
                A_BODY,
                A_TS,
                300
            ),
            Ok(0)
        );
        // Published negative (last character changed).
        let bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(
            verify_standard(&[a], &headers(A_ID, &ts, bad), A_BODY, A_TS, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tolerance_is_inclusive_at_300_seconds_both_ways() {
        let a = WebhookSecret::parse(A_KEY).expect("secret");
        let ts = A_TS.to_string();
        let h = headers(A_ID, &ts, A_SIG);
        assert!(verify_standard(std::slice::from_ref(&a), &h, A_BODY, A_TS + 300, 300).is_ok());
        assert_eq!(
            verify_standard(std::slice::from_ref(&a), &h, A_BODY, A_TS + 301, 300),
            Err(SignatureError::TimestampTooOld)
        );
        assert!(verify_standard(std::slice::from_ref(&a), &h, A_BODY, A_TS - 300, 300).is_ok());
        assert_eq!(
            verify_standard(&[a], &h, A_BODY, A_TS - 301, 300),
            Err(SignatureError::TimestampInFuture)
        );
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let a = WebhookSecret::parse(A_KEY).expect("secret");
        for ts in [
            "hello",
            "",
            "1614265330.5",
            "+1614265330",
            "99999999999999999999",
            "-1",
        ] {
            let r = verify_standard(
                std::slice::from_ref(&a),
                &headers(A_ID, ts, A_SIG),
                A_BODY,
                A_TS,
                300,
            );
            assert!(
                matches!(
                    r,
                    Err(SignatureError::InvalidTimestamp) | Err(SignatureError::TimestampTooOld)
                ),
                "{ts}: {r:?}"
            );
        }
        let ts = A_TS.to_string();
        for sig in [
            "v1,",
            "v1,g0hM9SsE",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,dawfeoifkpqwoekfpqoekf",
        ] {
            assert_eq!(
                verify_standard(
                    std::slice::from_ref(&a),
                    &headers(A_ID, &ts, sig),
                    A_BODY,
                    A_TS,
                    300
                ),
                Err(SignatureError::Mismatch),
                "{sig}"
            );
        }
        assert_eq!(
            verify_standard(
                std::slice::from_ref(&a),
                &headers("a.b", &ts, A_SIG),
                A_BODY,
                A_TS,
                300
            ),
            Err(SignatureError::InvalidId)
        );
        let missing = StandardHeaders {
            id: Some(A_ID),
            timestamp: Some(&ts),
            signature: None,
        };
        assert_eq!(
            verify_standard(&[a], &missing, A_BODY, A_TS, 300),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn rotation_and_multiple_signatures() {
        let old = WebhookSecret::parse(A_KEY).expect("old");
        let new = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("new");
        let ts = A_TS.to_string();
        let sig = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xyz {A_SIG}");
        assert_eq!(
            verify_standard(
                &[new.clone(), old.clone()],
                &headers(A_ID, &ts, &sig),
                A_BODY,
                A_TS,
                300
            ),
            Ok(1)
        );
        assert_eq!(
            verify_standard(&[new], &headers(A_ID, &ts, &sig), A_BODY, A_TS, 300),
            Err(SignatureError::Mismatch)
        );
        // Unpadded secrets and a missing prefix are the same secret.
        let unpadded = WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("no prefix");
        assert_eq!(unpadded.sign(A_ID, A_TS, A_BODY), A_SIG);
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert_eq!(format!("{old:?}"), "WebhookSecret([REDACTED])");
    }

    #[test]
    fn github_vector_and_exact_match() {
        let secret = b"It's a Secret to Everybody";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_hub(secret, b"Hello, World!"), sig);
        assert!(verify_hub(secret, sig, b"Hello, World!").is_ok());
        assert!(verify_hub(secret, &sig.to_uppercase(), b"Hello, World!").is_err());
        assert!(verify_hub(secret, sig.trim_start_matches("sha256="), b"Hello, World!").is_err());
        assert!(verify_hub(secret, sig, b"Hello, World!\n").is_err());
    }

    #[test]
    fn connectwise_autotask_and_shared_secret_schemes() {
        // ConnectWise: key = SHA-256 of the signing key; HMAC-SHA256 of the body, base64 (TICKETING.md).
        let body = br#"{"Action":"updated","ID":42}"#;
        let sig = sign_connectwise("cw-signing-key", body);
        assert!(verify_connectwise("cw-signing-key", &sig, body).is_ok());
        assert!(verify_connectwise("another-key", &sig, body).is_err());
        assert!(verify_connectwise("cw-signing-key", &sig, b"{}").is_err());
        // The HMAC's key really is the digest, not the text (RFC 4231-style check against a plain keyed HMAC).
        assert_ne!(sig, STANDARD.encode(hmac_sha256(b"cw-signing-key", body)));
        // Autotask: HMAC-SHA1 of the body, base64. RFC 2202 test case 2 ("Jefe"), hex effcdf6a...
        let rfc = sign_autotask(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            STANDARD.decode(&rfc).expect("base64"),
            [
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ]
        );
        assert!(verify_autotask(b"Jefe", &rfc, b"what do ya want for nothing?").is_ok());
        assert!(
            verify_autotask(
                b"Jefe",
                &format!("sha1={rfc}"),
                b"what do ya want for nothing?"
            )
            .is_ok()
        );
        assert!(verify_autotask(b"jefe", &rfc, b"what do ya want for nothing?").is_err());
        // A shared secret: the value, or a bearer token; nothing shorter, longer or different.
        let secret = "s3cr3t-value-of-32-characters-ok";
        assert!(verify_shared_secret(secret, secret).is_ok());
        assert!(verify_shared_secret(secret, &format!("Bearer {secret}")).is_ok());
        assert!(verify_shared_secret(secret, &secret[1..]).is_err());
        assert!(verify_shared_secret(secret, &format!("{secret}x")).is_err());
        assert!(verify_shared_secret(secret, "").is_err());
    }
}
