//! One batch, one transaction: the one place where the books are loaded,
//! changed by the domain and written back (`run`); each dialect reads and
//! writes the rows its own way ([`BatchTx`]): set-wise on one server
//! (`pg_setwise.rs`, `lite_setwise.rs`), one institution per statement on
//! a sharded PostgreSQL (`batch_reads!` here, `postgres.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::{
    Books, ChainHead, EnrollmentBook, InstitutionBook, KnownEntry, Outcome,
};
use crate::domain::entry::{Entry, Request};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::policy::RulePack;
use crate::domain::registry::{Institution, SupervisionMode};
use crate::store::figures::{self, KeptFigures};
use crate::store::rule_cache::RuleCache;
use crate::store::{Result, StoreError};

/// Puts every pending entry of `$entries` (money the bank must move) into
/// the outbox, in the batch's transaction `$tx`, one row per statement
/// (the per-institution writes).
macro_rules! insert_outbox {
    ($tx:expr, $entries:expr) => {
        for e in $entries
            .iter()
            .filter(|e| e.kind.phase() == $crate::domain::entry::Phase::Pending)
        {
            let at = $crate::store::DbTime::from(e.recorded_at);
            sqlx::query(
                "insert into outbox (institution_id, instruction_id, kind, amount_minor, currency, \
                   state, attempts, next_attempt_at, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
            )
            .bind(e.institution.as_str())
            .bind(e.client_id.as_str())
            .bind(e.kind.code())
            .bind(e.postings.first().map_or(0, |p| p.amount.minor()))
            .bind(e.currency.code())
            .bind(at)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// The reads of a batch one institution per statement (its connection in
/// `self.tx`), for a sharded PostgreSQL: `$dialect` is the dialect's
/// marker, which says how a key set is bound and how rows are locked.
macro_rules! batch_reads {
    ($dialect:expr) => {
        async fn lock_institutions(
            &mut self,
            ids: &[$crate::domain::ids::InstitutionId],
        ) -> $crate::store::Result<Vec<$crate::store::LockedInstitution>> {
            let d = $dialect;
            // One statement per institution, in institution id order: a
            // statement locking one institution by equality is what a
            // sharded PostgreSQL (Citus) routes to one shard and lets lock
            // (`= any(…) for update` it refuses); the order means two
            // batches over overlapping institutions can never deadlock.
            // (SQLite's BEGIN IMMEDIATE already holds its one write lock.)
            let sql = format!(
                "select i.*, h.last_seq, h.last_hash, h.last_recorded_at, \
                   (select generation from rule_pack_generation where only_row = 1) \
                     as rule_pack_generation \
                 from chain_heads h join institutions i on i.institution_id = h.institution_id \
                 where h.institution_id = $1{}",
                d.lock_rows_of("h"),
            );
            let mut found: Vec<$crate::store::rows::LockedRow> = Vec::with_capacity(ids.len());
            for id in ids {
                found.extend(
                    sqlx::query_as::<_, $crate::store::rows::LockedRow>(&sql)
                        .bind(id.as_str())
                        .fetch_optional(&mut *self.tx)
                        .await?,
                );
            }
            $crate::store::rows::convert(found)
        }

        async fn load_accounts(
            &mut self,
            keys: &[($crate::domain::ids::InstitutionId, String)],
        ) -> $crate::store::Result<
            Vec<(
                $crate::domain::ids::InstitutionId,
                $crate::domain::accounts::AccountCode,
                $crate::domain::accounts::Totals,
            )>,
        > {
            let d = $dialect;
            let sql = format!(
                "select a.* from accounts a where a.institution_id = $1 and a.account_code {}",
                d.in_list(2)
            );
            let mut found: Vec<$crate::store::rows::AccountRow> = Vec::with_capacity(keys.len());
            for of_one in keys.chunk_by(|x, y| x.0 == y.0) {
                found.extend(
                    sqlx::query_as::<_, $crate::store::rows::AccountRow>(&sql)
                        .bind(of_one[0].0.as_str())
                        .bind(d.list(of_one.iter().map(|(_, c)| c.as_str())))
                        .fetch_all(&mut *self.tx)
                        .await?,
                );
            }
            $crate::store::rows::convert(found)
        }

        async fn load_enrollments(
            &mut self,
            keys: &[($crate::domain::ids::InstitutionId, $crate::domain::ids::EnrollmentId)],
        ) -> $crate::store::Result<Vec<$crate::domain::books::EnrollmentBook>> {
            let d = $dialect;
            let sql = format!(
                "select e.* from enrollments e where e.institution_id = $1 and e.enrollment_id {}",
                d.in_list(2)
            );
            let mut found: Vec<$crate::store::rows::EnrollmentRow> = Vec::with_capacity(keys.len());
            for of_one in keys.chunk_by(|x, y| x.0 == y.0) {
                found.extend(
                    sqlx::query_as::<_, $crate::store::rows::EnrollmentRow>(&sql)
                        .bind(of_one[0].0.as_str())
                        .bind(d.list(of_one.iter().map(|(_, e)| e.as_str())))
                        .fetch_all(&mut *self.tx)
                        .await?,
                );
            }
            $crate::store::rows::convert(found)
        }

        async fn load_entries(
            &mut self,
            keys: &[($crate::domain::ids::InstitutionId, $crate::domain::ids::ClientId)],
        ) -> $crate::store::Result<Vec<$crate::domain::books::KnownEntry>> {
            let d = $dialect;
            let entries_sql = format!(
                "select {}, \
                   (select r.kind from entries r where r.institution_id = e.institution_id \
                      and r.refers_to_seq = e.seq) as referred_by \
                 from entries e where e.institution_id = $1 and e.client_id {}",
                $crate::store::rows::ENTRY_COLUMNS,
                d.in_list(2),
            );
            let postings_sql = format!(
                "select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
                 from postings p where p.institution_id = $1 and p.seq {} order by p.seq, p.leg",
                d.in_list(2),
            );
            let mut found: Vec<$crate::store::rows::EntryRow> = Vec::new();
            let mut postings: Vec<$crate::store::rows::PostingRow> = Vec::new();
            for of_one in keys.chunk_by(|x, y| x.0 == y.0) {
                let institution = of_one[0].0.as_str();
                let rows: Vec<$crate::store::rows::EntryRow> = sqlx::query_as(&entries_sql)
                    .bind(institution)
                    .bind(d.list(of_one.iter().map(|(_, c)| c.as_str())))
                    .fetch_all(&mut *self.tx)
                    .await?;
                if rows.is_empty() {
                    continue;
                }
                postings.extend(
                    sqlx::query_as::<_, $crate::store::rows::PostingRow>(&postings_sql)
                        .bind(institution)
                        .bind(d.seqs(rows.iter().map(|r| r.seq)))
                        .fetch_all(&mut *self.tx)
                        .await?,
                );
                found.extend(rows);
            }
            $crate::store::rows::assemble(found, postings, |r, p| r.into_known(p))
        }

        async fn load_rules(
            &mut self,
            jurisdictions: &[$crate::domain::ids::JurisdictionCode],
        ) -> $crate::store::Result<($crate::store::Chains, Vec<$crate::domain::policy::RulePack>)> {
            let d = $dialect;
            let found: Vec<$crate::store::rows::RuleContextRow> =
                sqlx::query_as(&$crate::store::batch::rules_sql(&d.in_list(1)))
                    .bind(d.list(jurisdictions.iter().map(|j| j.as_str())))
                    .fetch_all(&mut *self.tx)
                    .await?;
            $crate::store::rows::rule_context(found)
        }

        async fn rule_pack_generation(&mut self) -> $crate::store::Result<i64> {
            Ok(sqlx::query_scalar($crate::store::batch::RULE_PACK_GENERATION_SQL)
                .fetch_one(&mut *self.tx)
                .await?)
        }

        async fn load_figures(
            &mut self,
            ids: &[$crate::domain::ids::InstitutionId],
        ) -> $crate::store::Result<Vec<$crate::store::figures::KeptFigures>> {
            let d = $dialect;
            // Locked after the chain heads (a statement's refresh locks
            // only these rows), so the batch adds to the latest refresh.
            // One institution per statement, in id order, as the chain
            // heads (the Citus rule: routed to one shard, lockable there).
            let sql = format!(
                "select {} from institution_figures where institution_id = $1{}",
                $crate::store::figures::FIGURES_COLUMNS,
                d.lock_rows_of("institution_figures"),
            );
            let mut ids: Vec<&$crate::domain::ids::InstitutionId> = ids.iter().collect();
            ids.sort();
            ids.dedup();
            let mut found: Vec<$crate::store::figures::FiguresRow> = Vec::with_capacity(ids.len());
            for id in ids {
                found.extend(
                    sqlx::query_as::<_, $crate::store::figures::FiguresRow>(&sql)
                        .bind(id.as_str())
                        .fetch_optional(&mut *self.tx)
                        .await?,
                );
            }
            $crate::store::rows::convert(found)
        }
    };
}

/// A batch's transaction (or a read sharing the batch loaders, rolled back
/// on drop) on either dialect; each dialect implements [`BatchTx`] for its
/// own.
pub(crate) struct BatchOn<'a, DB: sqlx::Database> {
    pub tx: sqlx::Transaction<'a, DB>,
    pub statements: BatchStatements,
}

impl<'a, DB: sqlx::Database> BatchOn<'a, DB> {
    pub fn new(tx: sqlx::Transaction<'a, DB>, statements: BatchStatements) -> Self {
        BatchOn { tx, statements }
    }
}

/// How the statements of a batch on PostgreSQL address the institutions
/// it touches (SQLite always writes set-wise). Either way a batch is one transaction with the same locks,
/// taken in institution id order, and writes the same rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchStatements {
    /// Each statement covers every institution of the batch at once: about
    /// ten statements per batch whatever it touches. For one PostgreSQL
    /// server (the default). Rows of a single institution are still read
    /// and written with it bound once, the cheaper statement for them. A
    /// group commit's batch lets go of its locks at its commit and awaits
    /// its flush after (`group.rs`): one server's log covers it.
    #[default]
    SetWise,
    /// Each statement names one institution by equality: about ten
    /// statements per institution touched. What a sharded PostgreSQL
    /// (Citus) routes to one shard and lets lock; chosen by itself when
    /// the `citus` extension is installed. Commits wait for their flush
    /// (the nodes' logs are not one). (SQLite, one writer and no
    /// shards, always writes set-wise, `lite_setwise.rs`.)
    PerInstitution,
}

impl BatchStatements {
    /// As the configuration writes it.
    pub fn code(self) -> &'static str {
        match self {
            BatchStatements::SetWise => "set-wise",
            BatchStatements::PerInstitution => "per-institution",
        }
    }
}

/// The columns of an entry as a batch writes them.
pub(crate) const ENTRY_WRITE_COLUMNS: &str = "institution_id, seq, client_id, kind, currency, \
    occurred_at, recorded_at, external_ref, enrollment_id, hours, refers_to_seq, rule_pack, flags, \
    request_hash, prev_hash, hash";

/// The columns of a posting as a batch writes them.
pub(crate) const POSTING_WRITE_COLUMNS: &str = "institution_id, seq, leg, account_code, side, \
    amount_minor, posted_debits_after_minor, posted_credits_after_minor, \
    pending_debits_after_minor, pending_credits_after_minor";

/// Each jurisdiction's ancestry, root first.
pub(crate) type Chains = BTreeMap<JurisdictionCode, Vec<JurisdictionCode>>;

/// What one batch changed, for the dialect to write.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub entries: Vec<Entry>,
    /// (index into `entries`, leg, totals of the account after the posting)
    pub postings: Vec<(usize, usize, Totals)>,
    pub accounts: Vec<(InstitutionId, AccountCode, Totals)>,
    pub enrollments: Vec<(InstitutionId, EnrollmentId, u32, i64)>,
    pub heads: Vec<(InstitutionId, ChainHead)>,
}

/// An institution as loaded under its lock.
pub(crate) struct LockedInstitution {
    pub institution: Institution,
    pub created_at: DateTime<Utc>,
    pub head: ChainHead,
    /// The count of rule-pack changes, read in the same statement (so a
    /// batch that charges reads its kept rule packs without a round trip
    /// of its own: `rule_cache.rs`).
    pub rule_pack_generation: i64,
}

/// What a dialect does inside one batch transaction.
pub(crate) trait BatchTx {
    /// Locks the chain heads of `ids` (sorted, distinct) in that order.
    async fn lock_institutions(&mut self, ids: &[InstitutionId]) -> Result<Vec<LockedInstitution>>;
    async fn load_accounts(
        &mut self,
        keys: &[(InstitutionId, String)],
    ) -> Result<Vec<(InstitutionId, AccountCode, Totals)>>;
    async fn load_enrollments(
        &mut self,
        keys: &[(InstitutionId, EnrollmentId)],
    ) -> Result<Vec<EnrollmentBook>>;
    async fn load_entries(&mut self, keys: &[(InstitutionId, ClientId)])
        -> Result<Vec<KnownEntry>>;
    /// For each jurisdiction its ancestry (root first), and the rule packs of
    /// every jurisdiction in those ancestries.
    async fn load_rules(
        &mut self,
        jurisdictions: &[JurisdictionCode],
    ) -> Result<(
        BTreeMap<JurisdictionCode, Vec<JurisdictionCode>>,
        Vec<RulePack>,
    )>;
    /// The count of rule-pack changes ([`crate::store::rule_cache`]).
    async fn rule_pack_generation(&mut self) -> Result<i64>;
    async fn write(&mut self, changes: &Changes) -> Result<()>;
    /// The overview's kept rows of `ids` (sorted), locked.
    async fn load_figures(&mut self, ids: &[InstitutionId]) -> Result<Vec<KeptFigures>>;
    /// Writes the kept rows a batch changed, set-wise.
    async fn write_figures(&mut self, rows: &[KeptFigures], now: DateTime<Utc>) -> Result<()>;
}

/// The count of rule-pack changes, one row by its key (both dialects).
pub(crate) const RULE_PACK_GENERATION_SQL: &str =
    "select generation from rule_pack_generation where only_row = 1";

/// Each jurisdiction whose code is `membership` (a dialect's list of the
/// codes asked for) with its ancestry and their rule packs, root first, in
/// one round trip (rows for `rows::rule_context`).
pub(crate) fn rules_sql(membership: &str) -> String {
    format!(
        "with recursive up(start, code, parent_code, depth) as ( \
           select code, code, parent_code, 0 from jurisdictions where code {membership} \
           union all \
           select up.start, j.code, j.parent_code, up.depth + 1 \
           from jurisdictions j join up on j.code = up.parent_code \
         ) select up.start, up.code, p.jurisdiction_code, p.version, p.effective_from, p.params \
           from up left join rule_packs p on p.jurisdiction_code = up.code \
           order by up.start, up.depth desc"
    )
}

/// Runs a batch over a dialect's transaction, all or nothing: the first
/// refusal fails the batch (naming its item) and nothing is written.
pub(crate) async fn run_batch(
    tx: &mut impl BatchTx,
    rules: &RuleCache,
    requests: &[Request],
    now: DateTime<Utc>,
) -> Result<Vec<Entry>> {
    run(tx, rules, requests, now, true)
        .await?
        .into_iter()
        .enumerate()
        .map(|(index, answer)| {
            answer.map_err(|error| StoreError::Rejected {
                index: Some(index),
                error,
            })
        })
        .collect()
}

/// Runs a batch over a dialect's transaction request by request (group
/// commit): each request is checked against the books as the requests
/// before it in the batch left them; a refused one is left out of the write
/// and answered with its own refusal, and does not affect the others.
pub(crate) async fn run_batch_each(
    tx: &mut impl BatchTx,
    rules: &RuleCache,
    requests: &[Request],
    now: DateTime<Utc>,
) -> Result<Vec<std::result::Result<Entry, LedgerError>>> {
    run(tx, rules, requests, now, false).await
}

/// The one place where the books are loaded, changed by the domain and
/// written back; `all_or_nothing` stops at the first refusal before
/// anything is written.
async fn run(
    tx: &mut impl BatchTx,
    rules: &RuleCache,
    requests: &[Request],
    now: DateTime<Utc>,
    all_or_nothing: bool,
) -> Result<Vec<std::result::Result<Entry, LedgerError>>> {
    let reject = |index: usize| {
        move |error: LedgerError| StoreError::Rejected {
            index: Some(index),
            error,
        }
    };

    let ids: BTreeSet<InstitutionId> = requests.iter().map(|r| r.institution.clone()).collect();
    let ids: Vec<InstitutionId> = ids.into_iter().collect();
    let locked = tx.lock_institutions(&ids).await?;
    let rule_pack_generation = locked.first().map(|l| l.rule_pack_generation);
    let mut books = Books::default();
    let mut loaded_seq = BTreeMap::new();
    for l in locked {
        loaded_seq.insert(l.institution.id.clone(), l.head.last_seq);
        books.institutions.insert(
            l.institution.id.clone(),
            InstitutionBook {
                institution: l.institution,
                created_at: l.created_at,
                head: l.head,
                accounts: BTreeMap::new(),
                enrollments: BTreeMap::new(),
                entries: BTreeMap::new(),
                jurisdiction_chain: vec![],
                rule_packs: vec![],
                dirty_accounts: BTreeSet::new(),
                dirty_enrollments: BTreeSet::new(),
            },
        );
    }
    for (i, r) in requests.iter().enumerate() {
        // (Request by request, `Books::execute` answers the same refusal.)
        if all_or_nothing && !books.institutions.contains_key(&r.institution) {
            return Err(reject(i)(LedgerError::UnknownInstitution {
                institution: r.institution.to_string(),
            }));
        }
    }

    // The slice of the books this batch can touch.
    let mut account_keys = BTreeSet::new();
    let mut enrollment_keys = BTreeSet::new();
    let mut entry_keys = BTreeSet::new();
    for r in requests {
        for code in r.command.fixed_accounts() {
            account_keys.insert((r.institution.clone(), code.to_string()));
        }
        entry_keys.insert((r.institution.clone(), r.client_id.clone()));
        if let Some(target) = r.command.refers_to() {
            entry_keys.insert((r.institution.clone(), target.clone()));
        }
        if let Some(e) = r.command.enrollment() {
            enrollment_keys.insert((r.institution.clone(), e.clone()));
            account_keys.insert((
                r.institution.clone(),
                AccountCode::Prepaid(e.clone()).to_string(),
            ));
        }
    }
    let account_keys: Vec<_> = account_keys.into_iter().collect();
    let enrollment_keys: Vec<_> = enrollment_keys.into_iter().collect();
    let entry_keys: Vec<_> = entry_keys.into_iter().collect();
    for (institution, code, totals) in tx.load_accounts(&account_keys).await? {
        if let Some(book) = books.institutions.get_mut(&institution) {
            book.accounts.insert(code, totals);
        }
    }
    for e in tx.load_enrollments(&enrollment_keys).await? {
        if let Some(book) = books.institutions.get_mut(&e.state.enrollment.institution) {
            book.enrollments.insert(e.state.enrollment.id.clone(), e);
        }
    }
    let known = tx.load_entries(&entry_keys).await?;
    let mut extra_accounts = BTreeSet::new();
    for k in known {
        if let Some(book) = books.institutions.get_mut(&k.entry.institution) {
            for p in &k.entry.postings {
                if !book.accounts.contains_key(&p.account) {
                    extra_accounts.insert((k.entry.institution.clone(), p.account.to_string()));
                }
            }
            book.entries.insert(k.entry.client_id.clone(), k);
        }
    }
    // Confirmations and reversals act on the enrollment of their target.
    let mut extra_enrollments = BTreeSet::new();
    for (id, book) in &books.institutions {
        for known in book.entries.values() {
            if let Some(e) = &known.entry.enrollment {
                if !book.enrollments.contains_key(e) {
                    extra_enrollments.insert((id.clone(), e.clone()));
                }
            }
        }
    }
    if !extra_enrollments.is_empty() {
        let keys: Vec<_> = extra_enrollments.into_iter().collect();
        for e in tx.load_enrollments(&keys).await? {
            if let Some(book) = books.institutions.get_mut(&e.state.enrollment.institution) {
                book.enrollments.insert(e.state.enrollment.id.clone(), e);
            }
        }
    }
    if !extra_accounts.is_empty() {
        let keys: Vec<_> = extra_accounts.into_iter().collect();
        for (institution, code, totals) in tx.load_accounts(&keys).await? {
            if let Some(book) = books.institutions.get_mut(&institution) {
                book.accounts.insert(code, totals);
            }
        }
    }
    let mut charged = BTreeSet::new();
    for r in requests {
        if r.command.is_charge() && books.institutions.contains_key(&r.institution) {
            charged.insert(r.institution.clone());
        }
    }
    if !charged.is_empty() {
        let jurisdictions: BTreeSet<JurisdictionCode> = charged
            .iter()
            .map(|id| books.institutions[id].institution.jurisdiction.clone())
            .collect();
        let jurisdictions: Vec<_> = jurisdictions.into_iter().collect();
        let (chains, packs) = rules.load(tx, rule_pack_generation, &jurisdictions).await?;
        for id in charged {
            let book = books.institutions.get_mut(&id).expect("locked above");
            let chain = chains
                .get(&book.institution.jurisdiction)
                .cloned()
                .unwrap_or_default();
            book.rule_packs = packs
                .iter()
                .filter(|p| chain.contains(&p.jurisdiction))
                .cloned()
                .collect();
            book.jurisdiction_chain = chain;
        }
    }

    // Each request's answer: a new entry (by its index in the changes) or
    // the original of a replay.
    let mut answers = Vec::with_capacity(requests.len());
    let mut changes = Changes::default();
    for (i, r) in requests.iter().enumerate() {
        // A refusal leaves the books as they were (`Books::execute`).
        match books.execute(r, now) {
            Ok(Outcome::Recorded { entry, effects }) => {
                let index = changes.entries.len();
                for (leg, effect) in effects.iter().enumerate() {
                    changes.postings.push((index, leg, effect.totals_after));
                }
                changes.entries.push(entry);
                answers.push(Answer::New(index));
            }
            Ok(Outcome::Replayed(entry)) => answers.push(Answer::Replayed(Box::new(entry))),
            Err(error) if all_or_nothing => return Err(reject(i)(error)),
            Err(error) => answers.push(Answer::Refused(error)),
        }
    }
    for (id, book) in &books.institutions {
        for code in &book.dirty_accounts {
            changes
                .accounts
                .push((id.clone(), code.clone(), book.accounts[code]));
        }
        for e in &book.dirty_enrollments {
            let eb = &book.enrollments[e];
            changes.enrollments.push((
                id.clone(),
                e.clone(),
                eb.state.hours_consumed,
                eb.paid_minor,
            ));
        }
        if loaded_seq.get(id) != Some(&book.head.last_seq) {
            changes.heads.push((id.clone(), book.head.clone()));
        }
    }
    if !changes.entries.is_empty() {
        tx.write(&changes).await?;
        // The overview's kept rows move with the books, in this transaction.
        let touched: BTreeSet<InstitutionId> = changes
            .entries
            .iter()
            .map(|e| e.institution.clone())
            .collect();
        let touched: Vec<InstitutionId> = touched.into_iter().collect();
        let modes: HashMap<InstitutionId, SupervisionMode> = touched
            .iter()
            .filter_map(|id| {
                let book = books.institutions.get(id)?;
                Some((id.clone(), book.institution.mode))
            })
            .collect();
        let kept = tx.load_figures(&touched).await?;
        let rows = figures::after_batch(kept, &modes, &changes.entries)?;
        if !rows.is_empty() {
            tx.write_figures(&rows, now).await?;
        }
    }
    let mut written: Vec<Option<Entry>> = changes.entries.into_iter().map(Some).collect();
    Ok(answers
        .into_iter()
        .map(|a| match a {
            Answer::Replayed(replayed) => Ok(*replayed),
            Answer::New(index) => Ok(written[index]
                .take()
                .expect("each new entry answers one request")),
            Answer::Refused(error) => Err(error),
        })
        .collect())
}

/// What one request of a batch came to, before the write.
enum Answer {
    /// A new entry, by its index in the changes.
    New(usize),
    Replayed(Box<Entry>),
    Refused(LedgerError),
}
