//! Signed checkpoints: every chain head of a database at an instant, signed
//! with Ed25519, kept outside the database by whoever must be able to prove
//! later that the database still extends it (a bureau, an auditor).
//!
//! The signature covers the canonical encoding (version 1, the same
//! length-prefixed fields as `chain.rs`): `checkpoint/v1`, the instant in
//! microseconds since the Unix epoch, the public key (hex), the number of
//! institutions, then per institution in id order its id, its entry chain's
//! seq and hash and its record chain's seq and hash, and last the audit
//! log chain's seq and hash. A chain with nothing in it is seq 0 and the
//! genesis hash (64 zeros).
//!
//! Keys are files of hex text: the private key is the 32-byte Ed25519 seed
//! (64 hex digits), the public key the 32-byte verifying key (64 hex digits).

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::domain::chain::Encoder;

pub const FORMAT: &str = "escrow-ledger-checkpoint/v1";

/// A position in a hash chain: the seq of its last link and that link's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPosition {
    pub seq: i64,
    pub hash: String,
}

impl Default for ChainPosition {
    /// An empty chain.
    fn default() -> Self {
        ChainPosition {
            seq: 0,
            hash: crate::domain::chain::GENESIS_HASH.to_string(),
        }
    }
}

/// One institution's chain heads at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionHeads {
    pub institution: String,
    /// The journal entries' chain.
    pub entries: ChainPosition,
    /// The record chain: statements with their lines, refunds, refund
    /// events, payees.
    pub records: ChainPosition,
}

/// Every chain head at `attested_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heads {
    pub attested_at: DateTime<Utc>,
    pub institutions: Vec<InstitutionHeads>,
    pub audit: ChainPosition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    #[serde(flatten)]
    pub heads: Heads,
    /// Hex of the Ed25519 verifying key that signed it.
    pub public_key: String,
    /// Hex of the Ed25519 signature over the canonical encoding.
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("{what} is not a key: {reason}")]
    MalformedKey { what: &'static str, reason: String },
    #[error("the checkpoint is not one: {0}")]
    Malformed(String),
    #[error("the checkpoint was signed by key {signed_by}, not by the public key given ({given})")]
    OtherKey { signed_by: String, given: String },
    #[error("the checkpoint's signature does not match its content: it was edited or forged")]
    BadSignature,
}

impl CheckpointError {
    pub fn code(&self) -> &'static str {
        match self {
            CheckpointError::MalformedKey { .. } => "malformed_key",
            CheckpointError::Malformed(_) => "malformed_checkpoint",
            CheckpointError::OtherKey { .. } => "checkpoint_signed_by_other_key",
            CheckpointError::BadSignature => "checkpoint_signature_invalid",
        }
    }
}

fn key_bytes(what: &'static str, text: &str) -> Result<[u8; 32], CheckpointError> {
    let bad = |reason: String| CheckpointError::MalformedKey { what, reason };
    let bytes = hex::decode(text.trim()).map_err(|e| bad(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("{} bytes, expected 32", b.len())))
}

/// A private key from its file's text (64 hex digits).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, CheckpointError> {
    Ok(SigningKey::from_bytes(&key_bytes("the private key", text)?))
}

/// A public key from its file's text (64 hex digits).
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, CheckpointError> {
    VerifyingKey::from_bytes(&key_bytes("the public key", text)?).map_err(|e| {
        CheckpointError::MalformedKey {
            what: "the public key",
            reason: e.to_string(),
        }
    })
}

/// A new private key from 32 random bytes the caller drew from the OS.
pub fn signing_key_from_seed(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

pub fn signing_key_text(key: &SigningKey) -> String {
    hex::encode(key.to_bytes())
}

pub fn verifying_key_text(key: &VerifyingKey) -> String {
    hex::encode(key.to_bytes())
}

/// The bytes the signature covers.
pub fn signed_bytes(heads: &Heads, public_key: &str) -> Vec<u8> {
    let mut e = Encoder(Vec::with_capacity(128 + heads.institutions.len() * 200));
    e.field("checkpoint/v1")
        .field(&heads.attested_at.timestamp_micros().to_string())
        .field(public_key)
        .field(&heads.institutions.len().to_string());
    for i in &heads.institutions {
        e.field(&i.institution)
            .field(&i.entries.seq.to_string())
            .field(&i.entries.hash)
            .field(&i.records.seq.to_string())
            .field(&i.records.hash);
    }
    e.field(&heads.audit.seq.to_string())
        .field(&heads.audit.hash);
    e.0
}

impl Checkpoint {
    /// Signs the heads (institutions sorted by id, as the encoding wants).
    pub fn sign(mut heads: Heads, key: &SigningKey) -> Checkpoint {
        heads
            .institutions
            .sort_by(|a, b| a.institution.cmp(&b.institution));
        let public_key = verifying_key_text(&key.verifying_key());
        let signature = key.sign(&signed_bytes(&heads, &public_key));
        Checkpoint {
            format: FORMAT.to_string(),
            heads,
            public_key,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks the checkpoint was signed by `key` and not changed since.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        if self.format != FORMAT {
            return Err(CheckpointError::Malformed(format!(
                "format {:?}, expected {FORMAT:?}",
                self.format
            )));
        }
        let given = verifying_key_text(key);
        if self.public_key != given {
            return Err(CheckpointError::OtherKey {
                signed_by: self.public_key.clone(),
                given,
            });
        }
        let sorted = self
            .heads
            .institutions
            .windows(2)
            .all(|w| w[0].institution < w[1].institution);
        if !sorted {
            return Err(CheckpointError::Malformed(
                "institutions are not in id order, or one appears twice".into(),
            ));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::BadSignature)?;
        key.verify(
            &signed_bytes(&self.heads, &self.public_key),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn heads() -> Heads {
        Heads {
            attested_at: Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap(),
            institutions: vec![InstitutionHeads {
                institution: "I1".into(),
                entries: ChainPosition {
                    seq: 3,
                    hash: "ab".repeat(32),
                },
                records: ChainPosition {
                    seq: 0,
                    hash: "0".repeat(64),
                },
            }],
            audit: ChainPosition {
                seq: 9,
                hash: "cd".repeat(32),
            },
        }
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_only_unchanged() {
        let key = signing_key_from_seed([7; 32]);
        let cp = Checkpoint::sign(heads(), &key);
        assert_eq!(cp.verify_signature(&key.verifying_key()), Ok(()));
        let mut edited = cp.clone();
        edited.heads.institutions[0].entries.seq = 2;
        assert_eq!(
            edited.verify_signature(&key.verifying_key()),
            Err(CheckpointError::BadSignature)
        );
        let other = signing_key_from_seed([8; 32]);
        assert_eq!(
            cp.verify_signature(&other.verifying_key())
                .unwrap_err()
                .code(),
            "checkpoint_signed_by_other_key"
        );
        let text = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(back.verify_signature(&key.verifying_key()), Ok(()));
    }

    #[test]
    fn keys_round_trip_through_their_text() {
        let key = signing_key_from_seed([1; 32]);
        let again = parse_signing_key(&format!("{}\n", signing_key_text(&key))).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes());
        let public = parse_verifying_key(&verifying_key_text(&key.verifying_key())).unwrap();
        assert_eq!(public, key.verifying_key());
        assert_eq!(
            parse_verifying_key("abcd").unwrap_err().code(),
            "malformed_key"
        );
    }
}
