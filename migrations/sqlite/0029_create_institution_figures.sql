-- The overview's summary row of each institution, kept up to date in the
-- transaction of every write that changes it (entry batches, statement
-- ingests, supervised accounts, alert state changes), so the overview of a
-- province is an index read, not an aggregate over postings per request.
-- Rows of institutions created before this migration are filled in by the
-- first migrate after it (`Store::keep_figures_written_before`).

create table institution_figures (
    institution_id            text primary key references institutions (institution_id),
    jurisdiction_code         text not null,
    -- The books now (what the overview's columns show).
    owed_minor                integer not null default 0,
    escrow_minor              integer not null default 0,
    deposit_minor             integer not null default 0,
    -- Coverage's inputs: the day the banks reported through (the earliest
    -- escrow account's latest closing) and the latest closing of any
    -- account; the sum of the closings counted, or why unconfirmed.
    owed_on                   text,
    closings_through          text,
    bank_minor                integer,
    unconfirmed               text,
    unconfirmed_detail        text,
    -- The ledger at the end of owed_on (every entry when the banks have
    -- not reported).
    unearned_minor            integer not null default 0,
    refund_payable_minor      integer not null default 0,
    pending_release_minor     integer not null default 0,
    held_by_institution_minor integer not null default 0,
    -- held / owed in basis points (null: unconfirmed or nothing owed) and
    -- the overview's sort key (such a row sorts as fully covered, last).
    coverage_bp               integer,
    coverage_sort             integer not null,
    red_alerts                integer not null default 0,
    yellow_alerts             integer not null default 0,
    updated_at                integer not null
);

create index institution_figures_by_coverage
    on institution_figures (jurisdiction_code, coverage_sort, institution_id);
create index institution_figures_by_province_coverage
    on institution_figures (coverage_sort, institution_id);
create index institution_figures_by_risk
    on institution_figures (red_alerts desc, yellow_alerts desc, coverage_sort, institution_id);
