//! The books of the institutions one batch touches, in memory: turning each
//! request into an entry (the posting rules), checking every invariant the
//! entry could break, and advancing totals, counters and the hash chain.
//!
//! The store loads a `Books`, runs every request of a batch through
//! [`Books::execute`] and writes back what changed; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::accounts::{AccountCode, Side, Totals};
use crate::domain::chain::{entry_hash, request_hash, truncate_to_micros};
use crate::domain::entry::{
    check_balanced, Command, Entry, EntryKind, Phase, Posting, RefundSource, Request,
};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::money::{add_minor, Amount};
use crate::domain::policy::{self, RulePack};
use crate::domain::registry::{EnrollmentState, Institution, InstitutionStatus};

/// The tip of an institution's hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub last_seq: i64,
    pub last_hash: String,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

/// An entry known to the batch, and the kind of the later entry that already
/// confirmed, voided or reversed it.
#[derive(Debug, Clone)]
pub struct KnownEntry {
    pub entry: Entry,
    pub referred_by: Option<EntryKind>,
}

/// The enrollment counters the ledger keeps beside the accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentBook {
    pub state: EnrollmentState,
    /// Tuition paid towards the price so far (payments, collections and
    /// attributed receipts, less their reversals).
    pub paid_minor: i64,
}

/// One institution's slice of the books, as far as a batch needs it.
#[derive(Debug, Clone)]
pub struct InstitutionBook {
    pub institution: Institution,
    pub created_at: DateTime<Utc>,
    pub head: ChainHead,
    pub accounts: BTreeMap<AccountCode, Totals>,
    pub enrollments: BTreeMap<EnrollmentId, EnrollmentBook>,
    pub entries: BTreeMap<ClientId, KnownEntry>,
    /// Root first, the institution's own jurisdiction last.
    pub jurisdiction_chain: Vec<JurisdictionCode>,
    pub rule_packs: Vec<RulePack>,
    pub dirty_accounts: BTreeSet<AccountCode>,
    pub dirty_enrollments: BTreeSet<EnrollmentId>,
}

/// The totals of one account right after one posting (kept per posting so
/// any past balance is a single lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingEffect {
    pub account: AccountCode,
    pub totals_after: Totals,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new entry, with the account totals after each of its postings.
    Recorded {
        entry: Entry,
        effects: Vec<PostingEffect>,
    },
    /// A replay of an entry already recorded: nothing changes.
    Replayed(Entry),
}

impl Outcome {
    pub fn entry(&self) -> &Entry {
        match self {
            Outcome::Recorded { entry, .. } | Outcome::Replayed(entry) => entry,
        }
    }
}

struct Plan {
    kind: EntryKind,
    enrollment: Option<EnrollmentId>,
    hours: Option<u32>,
    refers_to: Option<ClientId>,
    rule_pack: Option<String>,
    flags: Vec<String>,
    postings: Vec<Posting>,
    /// Change to the enrollment's consumed hours and paid tuition.
    hours_delta: u32,
    paid_delta: i64,
}

impl Plan {
    fn simple(kind: EntryKind, debit: AccountCode, credit: AccountCode, amount: Amount) -> Plan {
        Plan {
            kind,
            enrollment: None,
            hours: None,
            refers_to: None,
            rule_pack: None,
            flags: vec![],
            postings: vec![
                Posting::new(&debit, Side::Debit, amount),
                Posting::new(&credit, Side::Credit, amount),
            ],
            hours_delta: 0,
            paid_delta: 0,
        }
    }
}

impl InstitutionBook {
    fn enrollment(&self, id: &EnrollmentId) -> Result<&EnrollmentBook, LedgerError> {
        self.enrollments
            .get(id)
            .ok_or_else(|| LedgerError::UnknownEnrollment {
                institution: self.institution.id.to_string(),
                enrollment: id.to_string(),
            })
    }

    fn totals(&self, account: &AccountCode) -> Result<Totals, LedgerError> {
        self.accounts
            .get(account)
            .copied()
            .ok_or_else(|| LedgerError::UnknownAccount {
                institution: self.institution.id.to_string(),
                account: account.to_string(),
            })
    }

    fn known(&self, client_id: &ClientId) -> Result<&KnownEntry, LedgerError> {
        self.entries
            .get(client_id)
            .ok_or_else(|| LedgerError::UnknownEntry {
                institution: self.institution.id.to_string(),
                client_id: client_id.to_string(),
            })
    }

    fn require_active(&self) -> Result<(), LedgerError> {
        if self.institution.status != InstitutionStatus::Active {
            return Err(LedgerError::InstitutionNotActive {
                institution: self.institution.id.to_string(),
                status: self.institution.status.code().to_string(),
            });
        }
        Ok(())
    }

    /// A charge towards an enrollment: caps of the rule pack in force on the
    /// day, and never more than the price.
    fn plan_charge(
        &self,
        request: &Request,
        kind: EntryKind,
        debit: AccountCode,
        enrollment_id: &EnrollmentId,
        amount_minor: i64,
    ) -> Result<Plan, LedgerError> {
        self.require_active()?;
        let book = self.enrollment(enrollment_id)?;
        let amount = Amount::from_minor(amount_minor)?;
        let day = request.occurred_at.date_naive();
        let rules = policy::resolve(&self.jurisdiction_chain, &self.rule_packs, day);
        let flags = policy::check_charge(
            &rules,
            &book.state.enrollment,
            self.institution.category,
            day,
        )?;
        let paid_after = add_minor(book.paid_minor, amount_minor)?;
        let price = book.state.enrollment.price.minor();
        if paid_after > price {
            return Err(LedgerError::PaymentExceedsPrice {
                enrollment: enrollment_id.to_string(),
                amount_minor,
                paid_minor: book.paid_minor,
                price_minor: price,
            });
        }
        let mut plan = Plan::simple(
            kind,
            debit,
            AccountCode::Prepaid(enrollment_id.clone()),
            amount,
        );
        plan.enrollment = Some(enrollment_id.clone());
        plan.rule_pack = Some(rules.version);
        plan.flags = flags.into_iter().map(str::to_string).collect();
        plan.paid_delta = amount_minor;
        Ok(plan)
    }

    fn plan(&self, request: &Request) -> Result<Plan, LedgerError> {
        use AccountCode::*;
        Ok(match &request.command {
            Command::PayTuition { enrollment, amount } => self.plan_charge(
                request,
                EntryKind::TuitionPaid,
                EscrowCash,
                enrollment,
                amount.minor(),
            )?,
            Command::CollectOutsideEscrow { enrollment, amount } => self.plan_charge(
                request,
                EntryKind::TuitionCollectedOutside,
                HeldByInstitution,
                enrollment,
                amount.minor(),
            )?,
            Command::AttributeReceipt { enrollment, amount } => self.plan_charge(
                request,
                EntryKind::ReceiptAttributed,
                Unidentified,
                enrollment,
                amount.minor(),
            )?,
            Command::ConsumeLessons { enrollment, hours } => {
                let book = self.enrollment(enrollment)?;
                let e = &book.state.enrollment;
                let consumed = book.state.hours_consumed;
                let remaining = e.total_hours().saturating_sub(consumed);
                if *hours == 0 {
                    return Err(LedgerError::HoursMustBePositive { hours: 0 });
                }
                if *hours > remaining {
                    return Err(LedgerError::EnrollmentHoursExhausted {
                        enrollment: enrollment.to_string(),
                        remaining,
                        requested: *hours,
                    });
                }
                let earned = e.earned_after(consumed + hours) - e.earned_after(consumed);
                let postings = match Amount::from_minor(earned) {
                    Ok(amount) => vec![
                        Posting::new(&Prepaid(enrollment.clone()), Side::Debit, amount),
                        Posting::new(&Releasable, Side::Credit, amount),
                    ],
                    // Bonus hours (or hours worth less than a fen so far)
                    // earn nothing: the entry records the hours alone.
                    Err(_) => vec![],
                };
                Plan {
                    kind: EntryKind::LessonsConsumed,
                    enrollment: Some(enrollment.clone()),
                    hours: Some(*hours),
                    refers_to: None,
                    rule_pack: None,
                    flags: vec![],
                    postings,
                    hours_delta: *hours,
                    paid_delta: 0,
                }
            }
            Command::InstructRelease { amount } => Plan::simple(
                EntryKind::ReleaseInstructed,
                Releasable,
                EscrowCash,
                *amount,
            ),
            Command::ApproveRefund { enrollment, amount } => {
                self.enrollment(enrollment)?;
                let prepaid = Prepaid(enrollment.clone());
                let refundable = self.totals(&prepaid)?.available(prepaid.account_type());
                let requested = amount.map_or(refundable, |a| a.minor());
                if requested > refundable || requested <= 0 {
                    return Err(LedgerError::RefundExceedsRefundable {
                        enrollment: enrollment.to_string(),
                        requested_minor: requested,
                        refundable_minor: refundable,
                    });
                }
                let mut plan = Plan::simple(
                    EntryKind::RefundApproved,
                    prepaid,
                    RefundPayable,
                    Amount::from_minor(requested)?,
                );
                plan.enrollment = Some(enrollment.clone());
                plan
            }
            Command::InstructRefundPayment { amount, source } => Plan::simple(
                EntryKind::RefundPaymentInstructed,
                RefundPayable,
                match source {
                    RefundSource::Escrow => EscrowCash,
                    RefundSource::Deposit => DepositCash,
                },
                *amount,
            ),
            Command::RecordRefundPaidByInstitution { amount } => Plan::simple(
                EntryKind::RefundPaidByInstitution,
                RefundPayable,
                HeldByInstitution,
                *amount,
            ),
            Command::RecordUnidentifiedReceipt { amount } => Plan::simple(
                EntryKind::UnidentifiedReceipt,
                EscrowCash,
                Unidentified,
                *amount,
            ),
            Command::PayInDeposit { amount } => Plan::simple(
                EntryKind::DepositPaidIn,
                DepositCash,
                DepositPayable,
                *amount,
            ),
            Command::InstructDepositReturn { amount } => Plan::simple(
                EntryKind::DepositReturnInstructed,
                DepositPayable,
                DepositCash,
                *amount,
            ),
            Command::ConfirmPending { pending } | Command::VoidPending { pending } => {
                let target = self.known(pending)?;
                if target.entry.kind.phase() != Phase::Pending {
                    return Err(LedgerError::NotPending {
                        client_id: pending.to_string(),
                    });
                }
                if let Some(by) = target.referred_by {
                    return Err(LedgerError::AlreadyResolved {
                        client_id: pending.to_string(),
                        outcome: if by == EntryKind::PendingConfirmed {
                            "confirmed"
                        } else {
                            "voided"
                        },
                    });
                }
                let kind = if matches!(request.command, Command::ConfirmPending { .. }) {
                    EntryKind::PendingConfirmed
                } else {
                    EntryKind::PendingVoided
                };
                Plan {
                    kind,
                    enrollment: target.entry.enrollment.clone(),
                    hours: None,
                    refers_to: Some(pending.clone()),
                    rule_pack: None,
                    flags: vec![],
                    postings: target.entry.postings.clone(),
                    hours_delta: 0,
                    paid_delta: 0,
                }
            }
            Command::Reverse { entry } => {
                let target = self.known(entry)?;
                let cannot = |reason: &str| LedgerError::CannotReverse {
                    client_id: entry.to_string(),
                    reason: reason.to_string(),
                };
                match target.entry.kind {
                    EntryKind::LessonsConsumed => {
                        return Err(cannot(
                            "a lesson consumption earns tuition cumulatively; correct it with a refund",
                        ))
                    }
                    EntryKind::Reversal => return Err(cannot("it is itself a reversal")),
                    kind if kind.phase() != Phase::Posted => {
                        return Err(cannot(
                            "it moves money at the bank; void the pending entry or instruct a new movement",
                        ))
                    }
                    _ => {}
                }
                if target.referred_by.is_some() {
                    return Err(cannot("it was already reversed"));
                }
                let paid_delta = match target.entry.kind {
                    EntryKind::TuitionPaid
                    | EntryKind::TuitionCollectedOutside
                    | EntryKind::ReceiptAttributed => -target
                        .entry
                        .postings
                        .iter()
                        .filter(|p| p.side == Side::Debit)
                        .map(|p| p.amount.minor())
                        .sum::<i64>(),
                    _ => 0,
                };
                Plan {
                    kind: EntryKind::Reversal,
                    enrollment: target.entry.enrollment.clone(),
                    hours: None,
                    refers_to: Some(entry.clone()),
                    rule_pack: None,
                    flags: vec![],
                    postings: target
                        .entry
                        .postings
                        .iter()
                        .map(|p| Posting {
                            account: p.account.clone(),
                            side: p.side.opposite(),
                            amount: p.amount,
                        })
                        .collect(),
                    hours_delta: 0,
                    paid_delta,
                }
            }
        })
    }

    /// Applies the postings to copies of the totals and checks every floor.
    fn apply_postings(
        &self,
        phase: Phase,
        postings: &[Posting],
    ) -> Result<Vec<PostingEffect>, LedgerError> {
        let mut working: BTreeMap<AccountCode, Totals> = BTreeMap::new();
        let mut effects = Vec::with_capacity(postings.len());
        for p in postings {
            let account = p.account.clone();
            let mut totals = match working.get(&account) {
                Some(t) => *t,
                None => self.totals(&account)?,
            };
            match phase {
                Phase::Posted => totals.add(p.side, false, p.amount.minor())?,
                Phase::Pending => totals.add(p.side, true, p.amount.minor())?,
                Phase::PostPending => {
                    totals.remove_pending(p.side, p.amount.minor())?;
                    totals.add(p.side, false, p.amount.minor())?;
                }
                Phase::VoidPending => totals.remove_pending(p.side, p.amount.minor())?,
            }
            // Invariant 4: no account of the chart goes below zero on its
            // normal side, pending debits included.
            let available = totals.available(account.account_type());
            if available < 0 {
                let before = working
                    .get(&account)
                    .copied()
                    .map_or_else(|| self.totals(&account), Ok)?;
                return Err(LedgerError::WouldOverdraw {
                    account: account.to_string(),
                    available_minor: before.available(account.account_type()),
                    requested_minor: p.amount.minor(),
                });
            }
            working.insert(account.clone(), totals);
            effects.push(PostingEffect {
                account,
                totals_after: totals,
            });
        }
        Ok(effects)
    }

    /// Turns one request into an entry, or recognises it as a replay.
    /// On error nothing in `self` has changed.
    pub fn execute(
        &mut self,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Outcome, LedgerError> {
        let request_hash = request_hash(request);
        if let Some(known) = self.entries.get(&request.client_id) {
            if known.entry.request_hash == request_hash {
                return Ok(Outcome::Replayed(known.entry.clone()));
            }
            return Err(LedgerError::ExistsWithDifferentFields {
                what: "entry",
                id: request.client_id.to_string(),
            });
        }
        if request.currency != self.institution.currency {
            return Err(LedgerError::CurrencyMismatch {
                expected: self.institution.currency,
                found: request.currency,
            });
        }
        let plan = self.plan(request)?;
        if !(plan.kind == EntryKind::LessonsConsumed && plan.postings.is_empty()) {
            check_balanced(&plan.postings)?;
        }
        let effects = self.apply_postings(plan.kind.phase(), &plan.postings)?;

        let refers_to_seq = match &plan.refers_to {
            Some(id) => Some(self.known(id)?.entry.seq),
            None => None,
        };
        let now = truncate_to_micros(now);
        let recorded_at = match self.head.last_recorded_at {
            Some(last) if last > now => last,
            _ => now,
        };
        let mut entry = Entry {
            institution: self.institution.id.clone(),
            seq: self.head.last_seq + 1,
            client_id: request.client_id.clone(),
            kind: plan.kind,
            currency: request.currency,
            occurred_at: request.occurred_at,
            recorded_at,
            external_ref: request.external_ref.clone(),
            enrollment: plan.enrollment.clone(),
            hours: plan.hours,
            refers_to_seq,
            rule_pack: plan.rule_pack,
            flags: plan.flags,
            postings: plan.postings,
            request_hash,
            prev_hash: self.head.last_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry.prev_hash, &entry);

        // The last check that can fail, before anything changes: a refusal
        // leaves the books as they were, so a batch can carry on past it.
        let counters = match &plan.enrollment {
            Some(id) if plan.hours_delta != 0 || plan.paid_delta != 0 => {
                let book = self.enrollment(id)?;
                Some((
                    id.clone(),
                    book.state
                        .hours_consumed
                        .checked_add(plan.hours_delta)
                        .ok_or_else(|| LedgerError::EnrollmentHoursExhausted {
                            enrollment: id.to_string(),
                            remaining: 0,
                            requested: plan.hours_delta,
                        })?,
                    add_minor(book.paid_minor, plan.paid_delta)?,
                ))
            }
            _ => None,
        };

        // Everything checked: commit to the in-memory books.
        if let Some((id, hours_consumed, paid_minor)) = counters {
            let book = self
                .enrollments
                .get_mut(&id)
                .expect("the plan looked the enrollment up");
            book.state.hours_consumed = hours_consumed;
            book.paid_minor = paid_minor;
            self.dirty_enrollments.insert(id);
        }
        for effect in &effects {
            self.accounts
                .insert(effect.account.clone(), effect.totals_after);
            self.dirty_accounts.insert(effect.account.clone());
        }
        if let Some(id) = &plan.refers_to {
            if let Some(target) = self.entries.get_mut(id) {
                target.referred_by = Some(plan.kind);
            }
        }
        self.head = ChainHead {
            last_seq: entry.seq,
            last_hash: entry.hash.clone(),
            last_recorded_at: Some(recorded_at),
        };
        self.entries.insert(
            entry.client_id.clone(),
            KnownEntry {
                entry: entry.clone(),
                referred_by: None,
            },
        );
        Ok(Outcome::Recorded { entry, effects })
    }
}

/// The books of every institution a batch touches.
#[derive(Debug, Clone, Default)]
pub struct Books {
    pub institutions: BTreeMap<InstitutionId, InstitutionBook>,
}

impl Books {
    pub fn execute(
        &mut self,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Outcome, LedgerError> {
        let book = self
            .institutions
            .get_mut(&request.institution)
            .ok_or_else(|| LedgerError::UnknownInstitution {
                institution: request.institution.to_string(),
            })?;
        book.execute(request, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chain::GENESIS_HASH;
    use crate::domain::money::Currency;
    use crate::domain::registry::{Category, SupervisionMode};

    fn book(accounts: &[AccountCode]) -> InstitutionBook {
        InstitutionBook {
            institution: Institution {
                id: InstitutionId::parse("I").unwrap(),
                name: "I".into(),
                licence_no: "L".into(),
                jurisdiction: JurisdictionCode::national(),
                mode: SupervisionMode::Custody,
                category: Category::Subject,
                status: InstitutionStatus::Active,
                currency: Currency::Cny,
            },
            created_at: DateTime::<Utc>::MIN_UTC,
            head: ChainHead {
                last_seq: 0,
                last_hash: GENESIS_HASH.into(),
                last_recorded_at: None,
            },
            accounts: accounts
                .iter()
                .map(|a| (a.clone(), Totals::default()))
                .collect(),
            enrollments: BTreeMap::new(),
            entries: BTreeMap::new(),
            jurisdiction_chain: vec![JurisdictionCode::national()],
            rule_packs: vec![],
            dirty_accounts: BTreeSet::new(),
            dirty_enrollments: BTreeSet::new(),
        }
    }

    fn request(command: Command) -> Request {
        Request {
            institution: InstitutionId::parse("I").unwrap(),
            client_id: ClientId::parse("c").unwrap(),
            currency: Currency::Cny,
            occurred_at: DateTime::<Utc>::MIN_UTC,
            external_ref: None,
            command,
        }
    }

    #[test]
    fn a_posting_to_an_account_the_books_do_not_have_is_unknown_account() {
        let mut b = book(&[AccountCode::EscrowCash]);
        let err = b
            .execute(
                &request(Command::RecordUnidentifiedReceipt {
                    amount: crate::Amount::from_minor(5).unwrap(),
                }),
                DateTime::<Utc>::MIN_UTC,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unknown_account");
        assert!(
            b.dirty_accounts.is_empty() && b.head.last_seq == 0,
            "a refusal changes nothing"
        );
    }

    #[test]
    fn recorded_time_never_runs_backwards_within_an_institution() {
        let mut b = book(&[AccountCode::DepositCash, AccountCode::DepositPayable]);
        let later: DateTime<Utc> = "2026-09-01T00:00:00Z".parse().unwrap();
        let earlier: DateTime<Utc> = "2026-08-01T00:00:00Z".parse().unwrap();
        let first = b
            .execute(
                &request(Command::PayInDeposit {
                    amount: crate::Amount::from_minor(5).unwrap(),
                }),
                later,
            )
            .unwrap();
        let mut second = request(Command::PayInDeposit {
            amount: crate::Amount::from_minor(5).unwrap(),
        });
        second.client_id = ClientId::parse("d").unwrap();
        let second = b.execute(&second, earlier).unwrap();
        assert_eq!(first.entry().recorded_at, later);
        assert_eq!(second.entry().recorded_at, later);
        assert_eq!(second.entry().prev_hash, first.entry().hash);
    }

    #[test]
    fn an_institution_with_an_empty_name_is_invalid() {
        let mut i = book(&[]).institution;
        i.name = " ".into();
        assert_eq!(
            i.validate().map_err(|e| e.code()),
            Err("invalid_institution")
        );
    }
}
