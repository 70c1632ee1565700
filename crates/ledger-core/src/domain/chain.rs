//! The per-institution hash chain and the canonical encodings it hashes.
//!
//! Canonical encoding (version 1): a sequence of fields, each written as its
//! UTF-8 byte length in decimal, a ':' and the bytes, so no field can bleed
//! into the next. Absent optional fields are the empty string; times are
//! microseconds since the Unix epoch in decimal; amounts are minor units in
//! decimal. An entry's hash is SHA-256 over `prev_hash` (hex) followed by the
//! entry's encoding; the first entry's `prev_hash` is 64 zeros.

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::domain::entry::{Entry, Request};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

struct Encoder(Vec<u8>);

impl Encoder {
    fn field(&mut self, value: &str) -> &mut Self {
        self.0.extend_from_slice(value.len().to_string().as_bytes());
        self.0.push(b':');
        self.0.extend_from_slice(value.as_bytes());
        self
    }
    fn opt(&mut self, value: Option<impl ToString>) -> &mut Self {
        let text = value.map(|v| v.to_string()).unwrap_or_default();
        self.field(&text)
    }
}

/// The canonical bytes of an entry (everything but its own hash).
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut e = Encoder(Vec::with_capacity(256));
    e.field("entry/v1")
        .field(entry.institution.as_str())
        .field(&entry.seq.to_string())
        .field(entry.client_id.as_str())
        .field(entry.kind.code())
        .field(entry.currency.code())
        .field(&entry.occurred_at.timestamp_micros().to_string())
        .field(&entry.recorded_at.timestamp_micros().to_string())
        .opt(entry.external_ref.as_deref())
        .opt(entry.enrollment.as_ref())
        .opt(entry.hours)
        .opt(entry.refers_to_seq)
        .opt(entry.rule_pack.as_deref())
        .field(&entry.flags.join(","))
        .field(&entry.request_hash)
        .field(&entry.postings.len().to_string());
    for p in &entry.postings {
        e.field(&p.account)
            .field(p.side.code())
            .field(&p.amount_minor.to_string());
    }
    e.0
}

pub fn entry_hash(prev_hash: &str, entry: &Entry) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(encode_entry(entry));
    hex::encode(hasher.finalize())
}

/// SHA-256 over a request's content (not its recording): equal for a replay.
pub fn request_hash(request: &Request) -> String {
    let command = serde_json::to_string(&request.command)
        .expect("commands are plain data and always serialize");
    let mut e = Encoder(Vec::with_capacity(128));
    e.field("request/v1")
        .field(request.institution.as_str())
        .field(request.client_id.as_str())
        .field(request.currency.code())
        .field(&request.occurred_at.timestamp_micros().to_string())
        .opt(request.external_ref.as_deref())
        .field(&command);
    hex::encode(Sha256::digest(&e.0))
}
