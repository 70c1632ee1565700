//! The transfers reconciliation can still match (no kept match claims
//! them) and the entries that settle them, both dialects: read by each
//! recording run ([`Store::open_transfer_entries`]) and by the daily scan
//! ([`Store::open_transfer_seqs_in`]), and kept by the recording run
//! ([`Store::keep_open_transfers`]) so that the reads do not walk every
//! entry of the history each time.
//!
//! Claims are never deleted, so a transfer once claimed stays claimed.
//! What is kept for an institution (migration 0036) is a mark
//! (`through_seq`) and the transfers at or below it that were unclaimed
//! when it moved. A read takes those (less the ones claimed since) and the
//! transfers booked after the mark: one range of the primary key per
//! institution, so it costs what is open and what is new, not the history.
//! An institution without a mark is read whole, as before any keeping.

use std::collections::{BTreeSet, HashMap};

use crate::domain::entry::{Entry, EntryKind};
use crate::domain::ids::InstitutionId;
use crate::domain::recon::transfers::{transfer_kinds, SETTLING_KINDS};
use crate::store::bulk::within;
use crate::store::rows::{self, EntryRow, PostingRow, ENTRY_COLUMNS};
use crate::store::{IdSpan, Result, Store};

fn codes(kinds: &[EntryKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("'{}'", k.code()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which institutions a statement reads.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// One, by equality at `$1`: what a sharded server routes to one shard.
    One(&'a InstitutionId),
    /// A span of them (its ends at `$1`, `$2`), or all.
    Span(Option<IdSpan<'a>>),
}

impl Scope<'_> {
    fn condition(self, column: &str) -> String {
        match self {
            Scope::One(_) => format!(" and {column} = $1"),
            Scope::Span(span) => within(span, "and", column, 1),
        }
    }
}

/// Binds a [`Scope`]'s parameters to a query.
macro_rules! bind_scope {
    ($query:expr, $scope:expr) => {
        match $scope {
            Scope::One(id) => $query.bind(id.as_str()),
            Scope::Span(span) => bind_span!($query, span),
        }
    };
}

/// `marks` (each institution of the scope with its mark, 0 without one) and
/// `candidates` (the transfers after each mark and those kept unclaimed at
/// or below it). `bounded`: only what was booked by the institution's
/// chain head when the statement runs (what a keeping can stand for). `cross join` keeps SQLite's planner to
/// the institutions outside, each a range of the primary key inside.
fn candidates(scope: Scope<'_>, bounded: bool) -> String {
    let head = if bounded {
        "join chain_heads h on h.institution_id = e.institution_id and e.seq <= h.last_seq"
    } else {
        ""
    };
    format!(
        "with marks as materialized (select i.institution_id, \
             coalesce(m.through_seq, 0) as through_seq \
           from institutions i left join recon_open_marks m \
             on m.institution_id = i.institution_id where true{span_i}), \
         candidates as materialized (\
           select e.institution_id, e.seq from marks k cross join entries e {head} \
           where e.institution_id = k.institution_id and e.seq > k.through_seq \
             and e.kind in ({transfers}) \
           union all \
           select o.institution_id, o.seq from marks k cross join recon_open_transfers o \
           where o.institution_id = k.institution_id and o.seq <= k.through_seq)",
        span_i = scope.condition("i.institution_id"),
        transfers = codes(&transfer_kinds()),
    )
}

/// Whether a kept match claims the transfer `t.institution_id`, `t.seq`:
/// one probe of the claims' primary key. Written as a scalar subquery
/// with a limit, not `exists`: PostgreSQL, with statistics, turned
/// `not exists` into a hash anti join that read every claim of every
/// institution for one institution's handful of candidates (BENCHMARKS.md,
/// "The statement chain settled", on PostgreSQL).
fn claim_of(t: &str) -> String {
    format!(
        "(select 1 from recon_entry_claims c \
           where c.institution_id = {t}.institution_id and c.entry_seq = {t}.seq limit 1)"
    )
}

/// `candidates` not claimed: the CTE `open_transfers`.
fn unclaimed() -> String {
    format!(
        "open_transfers as materialized (select t.institution_id, t.seq \
           from candidates t where {} is null)",
        claim_of("t")
    )
}

/// The CTEs down to `open_seqs` (institution, seq): the open transfers of
/// the scope and the entries that confirm, void or reverse one of them.
fn open_seqs(scope: Scope<'_>) -> String {
    format!(
        "{candidates}, {unclaimed}, \
         open_seqs as (select institution_id, seq from open_transfers \
           union all \
           select s.institution_id, s.seq from open_transfers t cross join entries s \
           where s.institution_id = t.institution_id and s.refers_to_seq = t.seq \
             and s.kind in ({settling}))",
        candidates = candidates(scope, false),
        unclaimed = unclaimed(),
        settling = codes(&SETTLING_KINDS),
    )
}

/// What one keeping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptOpenTransfers {
    /// Institutions whose mark moved on (or began).
    pub marked: u64,
    /// Transfers now kept as open (added by this keeping).
    pub listed: u64,
    /// Kept ones dropped because a match claims them now.
    pub claimed: u64,
}

impl Store {
    /// The entries reconciliation can still match, in chain order: every
    /// transfer (money in or out of a supervised account) no kept match
    /// claims, and the entries that confirm, void or reverse one of them.
    /// The rest of the history (lessons, claimed transfers) stays in the
    /// database, and is not walked where the open transfers are kept.
    pub async fn open_transfer_entries(&self, id: &InstitutionId) -> Result<Vec<Entry>> {
        let scope = Scope::One(id);
        let open = open_seqs(scope);
        let entries = format!(
            "{open} select {ENTRY_COLUMNS} from open_seqs o cross join entries e \
             where e.institution_id = o.institution_id and e.seq = o.seq order by e.seq"
        );
        let postings = format!(
            "{open} select p.institution_id, p.seq, p.account_code, p.side, p.amount_minor \
             from open_seqs o cross join postings p \
             where p.institution_id = o.institution_id and p.seq = o.seq order by p.seq, p.leg"
        );
        on_reader!(self, |pool| {
            let found: Vec<EntryRow> = bind_scope!(sqlx::query_as(&entries), scope)
                .fetch_all(pool)
                .await?;
            let postings: Vec<PostingRow> = bind_scope!(sqlx::query_as(&postings), scope)
                .fetch_all(pool)
                .await?;
            rows::assemble(found, postings, |r, p| r.into_entry(p))
        })
    }

    /// The seqs of [`Store::open_transfer_entries`] of a span of
    /// institutions (or all), by institution: what the daily scan's
    /// matcher may still match beside reconciliation's kept matches.
    pub async fn open_transfer_seqs_in(
        &self,
        span: Option<IdSpan<'_>>,
    ) -> Result<HashMap<String, BTreeSet<i64>>> {
        let sql = format!(
            "{} select institution_id, seq from open_seqs",
            open_seqs(Scope::Span(span))
        );
        let rows: Vec<(String, i64)> = on_reader!(self, |pool| {
            // Planned afresh for its parameters (see `statement_lines_kept_in`).
            bind_span!(sqlx::query_as(&sql).persistent(false), span)
                .fetch_all(pool)
                .await?
        });
        let mut open: HashMap<String, BTreeSet<i64>> = HashMap::new();
        for (institution, seq) in rows {
            open.entry(institution).or_default().insert(seq);
        }
        Ok(open)
    }

    /// Keeps the open transfers of a span of institutions (or all) as far
    /// as each is booked now: the recording run's last step, so that the
    /// next read starts from the mark instead of the first entry. In one
    /// transaction: the kept ones a match claims now are dropped, the
    /// unclaimed transfers after each mark up to its chain head are added,
    /// and the marks move to the chain heads (never back).
    pub async fn keep_open_transfers(&self, span: Option<IdSpan<'_>>) -> Result<KeptOpenTransfers> {
        let claimed = format!(
            "delete from recon_open_transfers where {} is not null{}",
            claim_of("recon_open_transfers"),
            within(span, "and", "recon_open_transfers.institution_id", 1)
        );
        // Only the transfers after the marks: those at or below are kept
        // already, and the kept ones are not read again.
        let listed = format!(
            "{candidates}, {unclaimed} \
             insert into recon_open_transfers (institution_id, seq) \
             select t.institution_id, t.seq from open_transfers t cross join marks k \
             where k.institution_id = t.institution_id and t.seq > k.through_seq \
             on conflict (institution_id, seq) do nothing",
            candidates = candidates(Scope::Span(span), true),
            unclaimed = unclaimed(),
        );
        let marks = format!(
            "insert into recon_open_marks (institution_id, through_seq) \
             select h.institution_id, h.last_seq from chain_heads h where true{} \
             on conflict (institution_id) do update set through_seq = excluded.through_seq \
             where excluded.through_seq > recon_open_marks.through_seq",
            within(span, "and", "h.institution_id", 1)
        );
        let kept = in_tx!(self, |tx, _now, dialect| {
            // One keeper at a time, each reading one instant: the transfers
            // listed must be every unclaimed one up to the marks it moves.
            dialect.hold_keeping(&mut tx, "recon_open_marks").await?;
            let claimed = bind_span!(sqlx::query(&claimed).persistent(false), span)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let listed = bind_span!(sqlx::query(&listed).persistent(false), span)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let marked = bind_span!(sqlx::query(&marks).persistent(false), span)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            KeptOpenTransfers {
                marked,
                listed,
                claimed,
            }
        });
        Ok(kept)
    }
}
