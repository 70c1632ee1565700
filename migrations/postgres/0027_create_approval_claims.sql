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
    claimed_at    timestamptz not null,
    -- When the run of the effect now under way began: one run at a time;
    -- a run older than the service's limit is taken over (compare-and-set
    -- on this column) by the approver's retry or the workflow job.
    lease_at      timestamptz not null
);
insert into approval_claims (approval_id, decision, claimed_by, claimed_token, claimed_at, lease_at)
    select approval_id, decision, decided_by, decided_token, decided_at, decided_at from approval_decisions;
create trigger approval_claims_no_update
    before update of approval_id, decision, claimed_by, claimed_token, claimed_at on approval_claims
    for each row execute function forbid_change();

-- Approval requests and their decisions join their institution's record
-- chain (verify walks them). Those written before are linked once, by the
-- first migrate after this migration, which claims this row.
create table record_backfill_approvals (
    id        integer primary key check (id = 1),
    linked_at timestamptz not null
);

alter table record_links drop constraint record_links_kind_check;
alter table record_links add constraint record_links_kind_check
    check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee',
                    'lesson', 'lesson_event', 'freeze', 'approval', 'approval_decision'));
