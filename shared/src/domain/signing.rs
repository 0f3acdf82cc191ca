//! HMAC-SHA256 request signing: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64>` over `id.timestamp.body`, `whsec_` secrets) and the GitHub/Jira `X-Hub-Signature-256: sha256=<hex>`
//! scheme. Comparisons are constant-time; secrets print as `[REDACTED]`.

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

    /// A secret from raw bytes (tests, generated secrets).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
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
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("any key length"));
    m.update(body);
    let hex: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Verifies an `X-Hub-Signature-256` header exactly (lower-case hex with the `sha256=` prefix).
pub fn verify_hub(secret: &[u8], header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let expected = sign_hub(secret, body);
    if header.len() == expected.len() && bool::from(header.as_bytes().ct_eq(expected.as_bytes())) {
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
}
