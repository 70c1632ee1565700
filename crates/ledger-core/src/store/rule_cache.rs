//! The rule packs a charge is checked against, kept between batches.
//!
//! Every batch that charges tuition needs its institutions' jurisdiction
//! ancestries and their rule packs; reading them is a recursive query per
//! batch, for rows that change only when a bureau adds a pack. So they are
//! kept here, keyed by the jurisdiction asked for, and used for as long as
//! the database's count of rule-pack changes (`rule_pack_generation`,
//! migration 0033: moved by a trigger in the very transaction that adds a
//! pack) stays what it was when they were read. The count is one row by
//! its key, which a batch reads in the statement that takes its locks (no
//! round trip of its own); a new pack is seen by the next batch that
//! starts after it commits, in every process sharing the database.
//!
//! Why this is exact: jurisdictions are never changed once registered (an
//! architecture test holds every statement to that), so an ancestry read
//! once stays true; rule packs are only added, and each addition moves the
//! count. Packs are read after the count, so what is kept under a count is
//! never older than that count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::domain::ids::JurisdictionCode;
use crate::domain::policy::RulePack;
use crate::store::{BatchTx, Chains, Result};

/// One jurisdiction's ancestry (root first) and the packs of those
/// jurisdictions.
type Context = (Vec<JurisdictionCode>, Vec<RulePack>);

#[derive(Debug, Default)]
struct Kept {
    /// The count of rule-pack changes the contexts were read at.
    generation: Option<i64>,
    contexts: HashMap<JurisdictionCode, Context>,
}

/// Rule contexts kept between batches (shared by a store's clones).
#[derive(Debug, Default)]
pub(crate) struct RuleCache {
    kept: Mutex<Kept>,
}

impl RuleCache {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What [`BatchTx::load_rules`] answers for `jurisdictions`, read from
    /// the database only for those not kept at the current count
    /// (`generation` when the caller read it already, in this
    /// transaction, as a batch does with its locks).
    pub async fn load(
        &self,
        tx: &mut impl BatchTx,
        generation: Option<i64>,
        jurisdictions: &[JurisdictionCode],
    ) -> Result<(Chains, Vec<RulePack>)> {
        let generation = match generation {
            Some(g) => g,
            None => tx.rule_pack_generation().await?,
        };
        let missing: Vec<JurisdictionCode> = {
            let mut kept = self.kept();
            if kept.generation != Some(generation) {
                kept.contexts.clear();
                kept.generation = Some(generation);
            }
            jurisdictions
                .iter()
                .filter(|j| !kept.contexts.contains_key(*j))
                .cloned()
                .collect()
        };
        let mut read = HashMap::new();
        if !missing.is_empty() {
            let (chains, packs) = tx.load_rules(&missing).await?;
            for (code, chain) in chains {
                let of_chain = packs
                    .iter()
                    .filter(|p| chain.contains(&p.jurisdiction))
                    .cloned()
                    .collect();
                read.insert(code, (chain, of_chain));
            }
        }
        let mut kept = self.kept();
        // Another batch may have moved on to a later count meanwhile: what
        // this one read is kept only under the count it read first.
        if kept.generation == Some(generation) {
            for (code, context) in &read {
                kept.contexts.insert(code.clone(), context.clone());
            }
        }
        let mut chains = Chains::new();
        let mut packs = BTreeMap::new();
        for code in jurisdictions {
            let Some((chain, of_chain)) = read.get(code).or_else(|| kept.contexts.get(code)) else {
                // An unknown jurisdiction has no ancestry (as `load_rules`).
                continue;
            };
            chains.insert(code.clone(), chain.clone());
            for p in of_chain {
                packs.insert((p.jurisdiction.clone(), p.version), p.clone());
            }
        }
        Ok((chains, packs.into_values().collect()))
    }
}
