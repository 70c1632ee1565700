//! The store: the books on PostgreSQL (system of record) or SQLite (embedded
//! default), chosen by URL scheme. One batch is one database transaction:
//! lock the chain heads of its institutions in id order, load the slice of the
//! books it touches, run the pure domain over it, write back what changed.

/// Runs `$body` in one transaction of either dialect, with `$now` bound as
/// that dialect stores time (timestamptz, or integer microseconds). SQLite
/// transactions begin IMMEDIATE so that a read-then-write cannot deadlock.
/// Defined before the modules so that every dialect-neutral store module
/// uses this one.
macro_rules! in_tx {
    ($store:expr, |$tx:ident, $now:ident| $body:block) => {
        match $store {
            $crate::store::Store::Postgres(s) => {
                let $now: chrono::DateTime<chrono::Utc> =
                    $crate::domain::chain::truncate_to_micros(s.clock().now());
                let mut $tx = s.pool().begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Store::Sqlite(s) => {
                let $now: i64 = s.clock().now().timestamp_micros();
                let mut $tx = s.pool().begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Appends the link of a record just written to its institution's record
/// chain, in the writer's transaction `$tx` (either dialect): moves the
/// institution's record head (its row lock serialises the chain), chains the
/// record's digest to the previous link, writes the link.
macro_rules! seal_record {
    ($tx:ident, $institution:expr, $kind:expr, $key:expr, $digest:expr) => {{
        let institution: &str = $institution;
        let kind: &str = $kind;
        let key: &str = &$key;
        let digest: &str = &$digest;
        sqlx::query(
            "insert into record_heads (institution_id, last_seq, last_hash) values ($1, 0, $2) \
             on conflict (institution_id) do nothing",
        )
        .bind(institution)
        .bind($crate::domain::chain::GENESIS_HASH)
        .execute(&mut *$tx)
        .await?;
        let (seq, prev): (i64, String) = sqlx::query_as(
            "update record_heads set last_seq = last_seq + 1 where institution_id = $1 \
             returning last_seq, last_hash",
        )
        .bind(institution)
        .fetch_one(&mut *$tx)
        .await?;
        let hash = $crate::domain::chain::link_hash(&prev, institution, seq, kind, key, digest);
        sqlx::query(
            "insert into record_links (institution_id, seq, kind, record_key, digest, prev_hash, hash) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(institution)
        .bind(seq)
        .bind(kind)
        .bind(key)
        .bind(digest)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("update record_heads set last_hash = $2 where institution_id = $1")
            .bind(institution)
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Microseconds since the epoch of a time as either dialect binds it.
pub(crate) trait Micros {
    fn micros(&self) -> i64;
}

impl Micros for DateTime<Utc> {
    fn micros(&self) -> i64 {
        self.timestamp_micros()
    }
}

impl Micros for i64 {
    fn micros(&self) -> i64 {
        *self
    }
}

mod access;
mod alerts;
mod bulk;
mod claims;
mod clock;
mod feeds;
mod postgres;
mod recon;
mod report;
mod rows;
mod seal;
mod sqlite;
mod workflow;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use tracing::instrument;

use crate::domain::accounts::{AccountCode, Totals};
use crate::domain::books::{
    Books, ChainHead, EnrollmentBook, InstitutionBook, KnownEntry, Outcome,
};
use crate::domain::chain;
use crate::domain::checkpoint::{Heads, InstitutionHeads};
use crate::domain::entry::{Entry, Request};
use crate::domain::error::LedgerError;
use crate::domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode};
use crate::domain::policy::RulePack;
use crate::domain::registry::{Enrollment, Institution, Jurisdiction};

pub use access::{AuditRecord, KeptAnswer, TokenRecord};
pub use bulk::{AccountKey, EventRow};
pub use claims::KeyClaim;
pub use clock::Clock;
pub use feeds::{StatementLines, StoredLine};
pub use postgres::PgStore;
pub use recon::{Claimed, MatchRecord, ReconDay, RecordedDay, RecordedMatches};
pub use report::{AccountBalance, BalanceSheet, VerifyFailure, VerifyReport};
pub use sqlite::SqliteStore;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://escrow-ledger.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule of the ledger refused the request; `index` is its position in
    /// the batch, when it came in one.
    #[error("{}{error}", index.map(|i| format!("request {i} of the batch: ")).unwrap_or_default())]
    Rejected {
        index: Option<usize>,
        error: LedgerError,
    },
    #[error("database URL {url:?} is not supported: use postgres://… or sqlite://…")]
    UnsupportedUrl { url: String },
    #[error("stored data is not what this version can read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Rejected { error, .. } => error.code(),
            StoreError::UnsupportedUrl { .. } => "unsupported_database_url",
            StoreError::Corrupt(_) => "corrupt_data",
            StoreError::Database(_) | StoreError::Migration(_) => "database_error",
        }
    }

    /// The ledger rule that refused the request, if that is what happened.
    pub fn rejection(&self) -> Option<&LedgerError> {
        match self {
            StoreError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<LedgerError> for StoreError {
    fn from(error: LedgerError) -> Self {
        StoreError::Rejected { index: None, error }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
    async fn write(&mut self, changes: &Changes) -> Result<()>;
}

/// Runs a batch over a dialect's transaction: the one place where the books
/// are loaded, changed by the domain and written back.
pub(crate) async fn run_batch(
    tx: &mut impl BatchTx,
    requests: &[Request],
    now: DateTime<Utc>,
) -> Result<Vec<Entry>> {
    let reject = |index: usize| {
        move |error: LedgerError| StoreError::Rejected {
            index: Some(index),
            error,
        }
    };

    let ids: BTreeSet<InstitutionId> = requests.iter().map(|r| r.institution.clone()).collect();
    let ids: Vec<InstitutionId> = ids.into_iter().collect();
    let locked = tx.lock_institutions(&ids).await?;
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
        if !books.institutions.contains_key(&r.institution) {
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
                if let Ok(code) = AccountCode::parse(&p.account) {
                    if !book.accounts.contains_key(&code) {
                        extra_accounts.insert((k.entry.institution.clone(), p.account.clone()));
                    }
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
        if r.command.is_charge() {
            charged.insert(r.institution.clone());
        }
    }
    if !charged.is_empty() {
        let jurisdictions: BTreeSet<JurisdictionCode> = charged
            .iter()
            .map(|id| books.institutions[id].institution.jurisdiction.clone())
            .collect();
        let jurisdictions: Vec<_> = jurisdictions.into_iter().collect();
        let (chains, packs) = tx.load_rules(&jurisdictions).await?;
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
        match books.execute(r, now).map_err(reject(i))? {
            Outcome::Recorded { entry, effects } => {
                let index = changes.entries.len();
                for (leg, effect) in effects.iter().enumerate() {
                    changes.postings.push((index, leg, effect.totals_after));
                }
                changes.entries.push(entry);
                answers.push(Err(index));
            }
            Outcome::Replayed(entry) => answers.push(Ok(entry)),
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
    }
    let mut written: Vec<Option<Entry>> = changes.entries.into_iter().map(Some).collect();
    Ok(answers
        .into_iter()
        .map(|a| match a {
            Ok(replayed) => replayed,
            Err(index) => written[index]
                .take()
                .expect("each new entry answers one request"),
        })
        .collect())
}

/// The ledger's storage, on one of two backends.
#[derive(Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Store::Postgres($s) => $body,
            Store::Sqlite($s) => $body,
        }
    };
}

impl Store {
    /// Connects by URL scheme; a SQLite file is created if missing. Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with(url, Clock::System).await
    }

    pub async fn connect_with(url: &str, clock: Clock) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url, clock).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, clock).await?))
        } else {
            Err(StoreError::UnsupportedUrl {
                url: url.to_string(),
            })
        }
    }

    pub fn backend(&self) -> &'static str {
        dispatch!(self, _s => if matches!(self, Store::Postgres(_)) { "postgres" } else { "sqlite" })
    }

    /// Migrates the schema; the first time after the record chains came,
    /// links the records written before them.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, s => s.migrate().await)?;
        self.link_records_written_before_chains().await
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    pub async fn create_jurisdiction(&self, j: &Jurisdiction) -> Result<()> {
        dispatch!(self, s => s.create_jurisdiction(j).await)
    }

    /// Adds a rule pack version (idempotent); never rewrites an earlier one.
    pub async fn put_rule_pack(&self, pack: &RulePack) -> Result<()> {
        pack.params.validate()?;
        dispatch!(self, s => s.put_rule_pack(pack).await)
    }

    /// Registers an institution with its chart of accounts (idempotent).
    pub async fn create_institution(&self, institution: &Institution) -> Result<()> {
        institution.validate()?;
        dispatch!(self, s => s.create_institution(institution).await)
    }

    /// Registers an enrollment and opens its `prepaid/{enrollment}` account
    /// (idempotent).
    pub async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<()> {
        enrollment.validate()?;
        dispatch!(self, s => s.create_enrollment(enrollment).await)
    }

    pub async fn institution(&self, id: &InstitutionId) -> Result<Institution> {
        dispatch!(self, s => s.institution(id).await)
    }

    /// A page of every institution's entries in (institution, seq) order,
    /// after the given institution and seq (from the start without one).
    pub async fn entries_all(&self, after: Option<(&str, i64)>, limit: i64) -> Result<Vec<Entry>> {
        dispatch!(self, s => s.entries_all(after, limit).await)
    }

    /// Every institution's enrollments.
    pub async fn enrollments_all(&self) -> Result<Vec<Enrollment>> {
        dispatch!(self, s => s.enrollments_all().await)
    }

    /// An institution's enrollments (contracts), by id.
    pub async fn enrollments(&self, id: &InstitutionId) -> Result<Vec<Enrollment>> {
        dispatch!(self, s => s.enrollments(id).await)
    }

    pub async fn institutions(&self) -> Result<Vec<Institution>> {
        dispatch!(self, s => s.institutions().await)
    }

    /// Records one request (a batch of one).
    pub async fn execute(&self, request: Request) -> Result<Entry> {
        let mut entries = self
            .execute_batch(vec![request])
            .await
            .map_err(|e| match e {
                StoreError::Rejected { error, .. } => StoreError::Rejected { index: None, error },
                other => other,
            })?;
        Ok(entries.remove(0))
    }

    /// Records many requests in one database transaction: all or nothing.
    /// Returns one entry per request (the original one for a replay).
    #[instrument(skip_all, fields(backend = self.backend(), requests = requests.len()))]
    pub async fn execute_batch(&self, requests: Vec<Request>) -> Result<Vec<Entry>> {
        let requests = requests
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.validated().map_err(|error| StoreError::Rejected {
                    index: Some(i),
                    error,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        dispatch!(self, s => s.execute_batch(&requests).await)
    }

    /// Current balances of every account of an institution.
    pub async fn balances(&self, id: &InstitutionId) -> Result<BalanceSheet> {
        dispatch!(self, s => s.balances(id).await)
    }

    /// An institution and its current balances, in one round trip.
    pub async fn institution_with_balances(
        &self,
        id: &InstitutionId,
    ) -> Result<(Institution, BalanceSheet)> {
        dispatch!(self, s => s.institution_with_balances(id).await)
    }

    /// Current balances of institutions already loaded, in one round trip.
    pub async fn balance_sheets(
        &self,
        institutions: &[Institution],
    ) -> Result<BTreeMap<InstitutionId, BalanceSheet>> {
        let ids: Vec<InstitutionId> = institutions.iter().map(|i| i.id.clone()).collect();
        let rows = dispatch!(self, s => s.account_rows_of(&ids).await)?;
        let mut sheets: BTreeMap<InstitutionId, BalanceSheet> = institutions
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    BalanceSheet {
                        institution: i.id.clone(),
                        currency: i.currency,
                        as_of: None,
                        accounts: Vec::new(),
                    },
                )
            })
            .collect();
        for (id, code, totals) in rows {
            if let Some(sheet) = sheets.get_mut(&id) {
                sheet
                    .accounts
                    .push(report::AccountBalance::new(&code, totals));
            }
        }
        Ok(sheets)
    }

    /// Balances as the books stood at instant `at` (by recorded time).
    pub async fn balances_at(&self, id: &InstitutionId, at: DateTime<Utc>) -> Result<BalanceSheet> {
        dispatch!(self, s => s.balances_at(id, at).await)
    }

    /// An institution's entries in chain order, after `after_seq`, at most `limit`.
    pub async fn entries(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        dispatch!(self, s => s.entries(id, after_seq, limit).await)
    }

    /// Recomputes every chain from the rows (each institution's entries,
    /// running totals, account totals and enrollment counters, its record
    /// chain; the audit log's chain) and reports every chain's first break.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.verify_against(None).await
    }

    /// [`Store::verify`], and with the heads of a checkpoint (its signature
    /// checked by the caller), that every chain still extends them: a chain
    /// that ends before its checkpoint position, or reaches it with another
    /// hash, and an institution the checkpoint has and the database lacks,
    /// are failures.
    pub async fn verify_against(&self, checkpoint: Option<&Heads>) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            institutions: 0,
            entries: 0,
            records: 0,
            audit_entries: 0,
            checkpoint_attested_at: checkpoint.map(|c| c.attested_at),
            failures: vec![],
            heads: Heads {
                attested_at: chain::truncate_to_micros(self.now()),
                ..Heads::default()
            },
        };
        let mut wanted: BTreeMap<&str, &InstitutionHeads> = checkpoint
            .map(|c| {
                c.institutions
                    .iter()
                    .map(|i| (i.institution.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        for institution in self.institutions().await? {
            let heads = wanted.remove(institution.id.as_str());
            report::verify_institution(self, &institution.id, heads, &mut report).await?;
        }
        for (id, heads) in wanted {
            report.failures.push(VerifyFailure {
                institution: Some(id.to_string()),
                chain: "institutions".into(),
                seq: None,
                client_id: None,
                reason: format!(
                    "institution {id} is in the checkpoint (entries to {}, records to {}) but missing from the database",
                    heads.entries.seq, heads.records.seq
                ),
                checkpoint: true,
            });
        }
        let audit = self
            .verify_audit(checkpoint.map(|c| c.audit.seq), &mut report.failures)
            .await?;
        report.audit_entries = audit.links;
        if let Some(c) = checkpoint {
            report::against_checkpoint(
                None,
                "audit",
                "audit log entry",
                &c.audit,
                &audit,
                &mut report,
            );
        }
        report.heads.audit = audit.end;
        Ok(report)
    }

    pub(crate) async fn posting_snapshots(
        &self,
        id: &InstitutionId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Totals)>> {
        dispatch!(self, s => s.posting_snapshots(id, after_seq, limit).await)
    }

    /// The rules in force for an institution on a day (its jurisdiction's
    /// rule packs down from the national defaults).
    pub async fn rules_for(
        &self,
        institution: &Institution,
        day: chrono::NaiveDate,
    ) -> Result<crate::domain::policy::ResolvedRules> {
        let jurisdictions = vec![institution.jurisdiction.clone()];
        let (chains, packs) = match self {
            Store::Postgres(s) => {
                let mut tx = postgres::read_tx(s).await?;
                tx.load_rules(&jurisdictions).await?
            }
            Store::Sqlite(s) => {
                let mut tx = sqlite::read_tx(s).await?;
                tx.load_rules(&jurisdictions).await?
            }
        };
        let chain = chains
            .get(&institution.jurisdiction)
            .cloned()
            .unwrap_or_default();
        Ok(crate::domain::policy::resolve(&chain, &packs, day))
    }

    /// The store's clock (the system clock, or a test's).
    pub fn now(&self) -> DateTime<Utc> {
        dispatch!(self, s => s.clock().now())
    }

    pub(crate) async fn head(&self, id: &InstitutionId) -> Result<ChainHead> {
        dispatch!(self, s => s.head(id).await)
    }
}
