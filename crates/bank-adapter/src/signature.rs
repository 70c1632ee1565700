//! Signatures on pushed bank notifications: the contract a bank signs with
//! and the check the api crate's push endpoint runs before trusting a body.
//!
//! # Contract
//!
//! A bank that pushes (camt.054 notifications, intraday reports) sends
//!
//! ```text
//! POST <our push endpoint>
//! X-Escrow-Timestamp: 1767225600                 (unix seconds, ASCII digits)
//! X-Escrow-Signature: sha256=<64 lowercase hex>
//! <body bytes>
//! ```
//!
//! where the signature is `HMAC-SHA256(secret, timestamp + "." + body)` with
//! the secret shared with that bank. Signing the timestamp together with the
//! body is what makes the replay window meaningful: an attacker who captured
//! an old request cannot refresh its timestamp without the secret.
//!
//! # Precedence of errors
//!
//! Checked in this order, the first failure is returned: timestamp header
//! present, signature header present, timestamp well-formed, signature
//! well-formed, signature matches, timestamp inside the window. The window
//! is checked after the signature so that "your clock is off" is only ever
//! said to a sender who holds the secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

pub const TIMESTAMP_HEADER: &str = "X-Escrow-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Escrow-Signature";

/// How far a push's timestamp may be from our clock, in either direction.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

const SCHEME_PREFIX: &str = "sha256=";
/// Unix seconds fit in 12 digits until the year 33658; the bound also keeps
/// the window arithmetic far from overflow.
const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("push rejected: header {TIMESTAMP_HEADER} is missing")]
    MissingTimestamp,
    #[error("push rejected: header {SIGNATURE_HEADER} is missing")]
    MissingSignature,
    #[error("push rejected: header {TIMESTAMP_HEADER} is not unix seconds: {value:?}")]
    MalformedTimestamp { value: String },
    #[error(
        "push rejected: header {SIGNATURE_HEADER} is not \"sha256=\" followed by 64 hex digits"
    )]
    MalformedSignature,
    #[error("push rejected: signature does not match the body and timestamp")]
    BadSignature,
    #[error("push rejected: timestamp {timestamp} is {skew_secs}s away from now ({now}), outside the {window_secs}s replay window")]
    OutsideWindow {
        timestamp: i64,
        now: i64,
        skew_secs: i64,
        window_secs: u64,
    },
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::MalformedTimestamp { .. } => "malformed_timestamp",
            SignatureError::MalformedSignature => "malformed_signature",
            SignatureError::BadSignature => "bad_signature",
            SignatureError::OutsideWindow { .. } => "timestamp_outside_window",
        }
    }
}

/// The `X-Escrow-Signature` value for a body sent at `timestamp` (unix seconds).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mac = mac_over(secret, &timestamp.to_string(), body);
    format!(
        "{SCHEME_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Verifies a push with the default 5-minute replay window.
pub fn verify(
    secret: &Secret,
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    verify_with_window(
        secret,
        timestamp_header,
        signature_header,
        body,
        now,
        DEFAULT_REPLAY_WINDOW,
    )
}

/// Verifies a push; see the module docs for the order of the checks.
pub fn verify_with_window(
    secret: &Secret,
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    window: Duration,
) -> Result<(), SignatureError> {
    let timestamp_text = timestamp_header.ok_or(SignatureError::MissingTimestamp)?;
    let signature_text = signature_header.ok_or(SignatureError::MissingSignature)?;
    let timestamp = parse_timestamp(timestamp_text)?;
    let expected = parse_signature(signature_text)?;

    // The timestamp is authenticated as the client sent it, not as we
    // re-printed it: "0123" and "123" are different signed strings.
    let mac = mac_over(secret, timestamp_text.trim(), body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::BadSignature)?;

    let now_secs = now.timestamp();
    // Both values are bounded (12 digits; chrono's range), so this cannot overflow.
    let skew_secs = timestamp.saturating_sub(now_secs);
    let window_secs = window.as_secs();
    if skew_secs.unsigned_abs() > window_secs {
        return Err(SignatureError::OutsideWindow {
            timestamp,
            now: now_secs,
            skew_secs,
            window_secs,
        });
    }
    Ok(())
}

fn mac_over(secret: &Secret, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac takes keys of any length"),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    let trimmed = text.trim();
    let malformed = || SignatureError::MalformedTimestamp {
        value: text.chars().take(32).collect(),
    };
    if trimmed.is_empty()
        || trimmed.len() > MAX_TIMESTAMP_DIGITS
        || !trimmed.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    trimmed.parse::<i64>().map_err(|_| malformed())
}

fn parse_signature(text: &str) -> Result<Vec<u8>, SignatureError> {
    let hex_part = text
        .trim()
        .strip_prefix(SCHEME_PREFIX)
        .ok_or(SignatureError::MalformedSignature)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::MalformedSignature);
    }
    hex::decode(hex_part).map_err(|_| SignatureError::MalformedSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BODY: &[u8] = b"<Document>camt.054 notification</Document>";

    fn secret() -> Secret {
        Secret::new("shared-push-secret")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        match Utc.timestamp_opt(secs, 0) {
            chrono::LocalResult::Single(t) => t,
            _ => panic!("test timestamp out of range"),
        }
    }

    const NOW: i64 = 1_767_225_600;

    #[track_caller]
    fn check(
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
        expected: Result<(), &str>,
    ) {
        let got = verify(&secret(), timestamp, signature, body, at(now)).map_err(|e| e.code());
        assert_eq!(got, expected, "timestamp {timestamp:?}");
    }

    #[test]
    fn a_correctly_signed_fresh_push_is_accepted() {
        let sig = sign(&secret(), NOW, BODY);
        check(Some(&NOW.to_string()), Some(&sig), BODY, NOW, Ok(()));
    }

    #[test]
    fn a_tampered_body_is_rejected_as_bad_signature() {
        let sig = sign(&secret(), NOW, BODY);
        check(
            Some(&NOW.to_string()),
            Some(&sig),
            b"<Document>evil</Document>",
            NOW,
            Err("bad_signature"),
        );
    }

    #[test]
    fn a_push_signed_with_another_secret_is_rejected() {
        let sig = sign(&Secret::new("someone-else"), NOW, BODY);
        check(
            Some(&NOW.to_string()),
            Some(&sig),
            BODY,
            NOW,
            Err("bad_signature"),
        );
    }

    #[test]
    fn a_changed_timestamp_breaks_the_signature() {
        let sig = sign(&secret(), NOW - 1000, BODY);
        check(
            Some(&NOW.to_string()),
            Some(&sig),
            BODY,
            NOW,
            Err("bad_signature"),
        );
    }

    #[test]
    fn stale_and_future_timestamps_outside_the_window_are_rejected() {
        let window = DEFAULT_REPLAY_WINDOW.as_secs() as i64;
        for offset in [-window - 1, window + 1, -86_400, 86_400] {
            let ts = NOW + offset;
            let sig = sign(&secret(), ts, BODY);
            check(
                Some(&ts.to_string()),
                Some(&sig),
                BODY,
                NOW,
                Err("timestamp_outside_window"),
            );
        }
    }

    #[test]
    fn timestamps_at_the_edge_of_the_window_are_accepted() {
        let window = DEFAULT_REPLAY_WINDOW.as_secs() as i64;
        for offset in [-window, window, 0] {
            let ts = NOW + offset;
            let sig = sign(&secret(), ts, BODY);
            check(Some(&ts.to_string()), Some(&sig), BODY, NOW, Ok(()));
        }
    }

    #[test]
    fn missing_headers_are_named() {
        let sig = sign(&secret(), NOW, BODY);
        check(None, Some(&sig), BODY, NOW, Err("missing_timestamp"));
        check(
            Some(&NOW.to_string()),
            None,
            BODY,
            NOW,
            Err("missing_signature"),
        );
        check(None, None, BODY, NOW, Err("missing_timestamp"));
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        let sig = sign(&secret(), NOW, BODY);
        for bad in [
            "",
            "abc",
            "-5",
            "1.5",
            "+1767225600",
            "9999999999999999999",
            "2026-01-01T00:00:00Z",
        ] {
            check(Some(bad), Some(&sig), BODY, NOW, Err("malformed_timestamp"));
        }
    }

    #[test]
    fn malformed_signatures_are_rejected() {
        let good = sign(&secret(), NOW, BODY);
        let hex_only = good.trim_start_matches("sha256=").to_string();
        let short = &good[..good.len() - 2];
        let not_hex = format!("sha256={}", "zz".repeat(32));
        let other_scheme = format!("sha1={hex_only}");
        for bad in [
            hex_only.as_str(),
            short,
            not_hex.as_str(),
            other_scheme.as_str(),
            "",
        ] {
            check(
                Some(&NOW.to_string()),
                Some(bad),
                BODY,
                NOW,
                Err("malformed_signature"),
            );
        }
    }

    #[test]
    fn every_error_message_is_lowercase_and_names_the_header_or_rule() {
        let errors = [
            SignatureError::MissingTimestamp,
            SignatureError::MissingSignature,
            SignatureError::MalformedTimestamp { value: "x".into() },
            SignatureError::MalformedSignature,
            SignatureError::BadSignature,
            SignatureError::OutsideWindow {
                timestamp: 1,
                now: 400,
                skew_secs: -399,
                window_secs: 300,
            },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(message.starts_with("push rejected"), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
