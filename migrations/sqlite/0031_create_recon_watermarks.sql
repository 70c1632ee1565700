-- How far a recording run of reconciliation has read an institution's
-- entries for one supervised account: the greatest entry seq its statement
-- days were computed with. The next run recomputes only the days from the
-- earliest day an entry written after it moved money on (an entry booked
-- late for an earlier day included), and takes the figures of the days
-- before from recon_days. Updated in place by each run, in the transaction
-- that keeps its days; a missing row means every day is computed afresh.
create table recon_watermarks (
    institution_id text not null,
    bank_id        text not null,
    account_no     text not null,
    entry_seq      integer not null check (entry_seq >= 0),
    updated_at     integer not null,
    primary key (institution_id, bank_id, account_no),
    foreign key (institution_id, bank_id, account_no)
        references bank_accounts (institution_id, bank_id, account_no)
);

-- A recording run reads the entries of its window by the day the money
-- moved.
create index entries_by_occurred_at on entries (institution_id, occurred_at);
