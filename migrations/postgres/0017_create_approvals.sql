-- Maker-checker (two people for money that leaves): a request that waits
-- for a second, different officer (a manual release, a payee change, a
-- refund above the rule pack's threshold, a rule pack that loosens a
-- limit), and its one decision. Both append-only: a request is never
-- rewritten, a decision is a new row, and at most one per request.
create table approvals (
    approval_id       text primary key,
    kind              text not null check (kind in ('release', 'payee_change', 'refund', 'rule_pack')),
    jurisdiction_code text not null references jurisdictions (code),
    institution_id    text,
    subject           text not null,
    payload           text not null,
    summary           text not null,
    requested_by      text not null,
    requested_token   text not null,
    requested_name    text not null,
    requested_at      timestamptz not null
);
create index approvals_by_jurisdiction on approvals (jurisdiction_code, requested_at);

create table approval_decisions (
    approval_id   text primary key references approvals (approval_id),
    decision      text not null check (decision in ('approved', 'rejected')),
    decided_by    text not null,
    decided_token text not null,
    reason        text,
    decided_at    timestamptz not null
);

create trigger approvals_append_only before update or delete on approvals
    for each row execute function forbid_change();
create trigger approvals_no_truncate before truncate on approvals
    for each statement execute function forbid_change();
create trigger approval_decisions_append_only before update or delete on approval_decisions
    for each row execute function forbid_change();
create trigger approval_decisions_no_truncate before truncate on approval_decisions
    for each statement execute function forbid_change();
