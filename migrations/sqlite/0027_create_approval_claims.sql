-- Maker-checker decisions are claimed before their effect runs: one claim
-- per request (its primary key is the compare-and-set), so of concurrent
-- approvals and rejections exactly one decider wins. A rejection is claimed
-- and decided in one transaction; an approval is claimed, its effect runs,
-- then its decision is recorded. A claim is withdrawn only when the books
-- refuse its effect (the request is pending again); never once decided.
-- Decisions made before this migration are their own claims.
create table approval_claims (
    approval_id   text primary key references approvals (approval_id),
    decision      text not null check (decision in ('approved', 'rejected')),
    claimed_by    text not null,
    claimed_token text not null,
    claimed_at    integer not null,
    -- When the run of the effect now under way began: one run at a time;
    -- a run older than the service's limit is taken over (compare-and-set
    -- on this column) by the approver's retry or the workflow job.
    lease_at      integer not null
);
insert into approval_claims (approval_id, decision, claimed_by, claimed_token, claimed_at, lease_at)
    select approval_id, decision, decided_by, decided_token, decided_at, decided_at from approval_decisions;
create trigger approval_claims_no_update
    before update of approval_id, decision, claimed_by, claimed_token, claimed_at on approval_claims
begin select raise(abort, 'approval_claims is never rewritten: UPDATE refused'); end;

-- Approval requests and their decisions join their institution's record
-- chain (verify walks them). Those written before are linked once, by the
-- first migrate after this migration, which claims this row.
create table record_backfill_approvals (
    id        integer primary key check (id = 1),
    linked_at integer not null
);

-- SQLite cannot change a CHECK constraint: record_links is rebuilt with
-- the same rows (and its append-only triggers again).
create table record_links_0027 (
    institution_id text not null,
    seq            integer not null check (seq > 0),
    kind           text not null check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee',
                                                 'lesson', 'lesson_event', 'freeze',
                                                 'approval', 'approval_decision')),
    record_key     text not null,
    digest         text not null,
    prev_hash      text not null,
    hash           text not null,
    primary key (institution_id, seq),
    unique (institution_id, kind, record_key)
);
insert into record_links_0027 select institution_id, seq, kind, record_key, digest, prev_hash, hash from record_links;
drop table record_links;
alter table record_links_0027 rename to record_links;
create trigger record_links_no_update before update on record_links
begin select raise(abort, 'record_links is append-only: UPDATE refused'); end;
create trigger record_links_no_delete before delete on record_links
begin select raise(abort, 'record_links is append-only: DELETE refused'); end;
