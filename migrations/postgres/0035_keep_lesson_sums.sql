-- The daily risk scan reads the lessons consumed before its windows summed
-- per enrollment (four in five of an institution's entries). Summing them
-- afresh each day scans every old lesson, a cost that grows with history.
-- These tables keep the sums: for each institution, every lesson that
-- occurred before `before_at` and was booked by `through_seq`. The ledger
-- is append-only, so that set never changes once booked, and a lesson not
-- in it (later, or booked late) is summed on top when read. The daily job
-- moves the mark forward; nothing else writes here, and dropping a mark
-- only makes the next read sum afresh.
create table lesson_sum_marks (
    institution_id text primary key references institutions (institution_id),
    before_at      timestamptz not null,
    through_seq    bigint not null check (through_seq >= 0)
);

-- One row per enrollment (enrollment_key '' for lessons without one).
create table lesson_sums (
    institution_id text not null references institutions (institution_id),
    enrollment_key text not null,
    first_at       timestamptz not null,
    first_seq      bigint not null,
    hours          bigint not null check (hours >= 0),
    primary key (institution_id, enrollment_key)
);

-- Their postings, summed by account and side.
create table lesson_sum_postings (
    institution_id text not null references institutions (institution_id),
    enrollment_key text not null,
    account_code   text not null,
    side           text not null,
    amount_minor   bigint not null,
    primary key (institution_id, enrollment_key, account_code, side)
);
