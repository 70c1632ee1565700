-- How far an account's statement chain is settled, kept with the
-- watermark by the recording run of reconciliation: every end-of-day
-- statement issued on or before `chain_through` chains to the one before
-- it, and every statement day up to it is kept. `statements_through` is how
-- many statements issued on or before that day the run saw: a statement
-- that arrives later for such a day changes the count, and the next run
-- reads the whole chain again. Without a mark (or with a count that no
-- longer holds) the run reads every statement, as before.
alter table recon_watermarks add column chain_through text;
alter table recon_watermarks add column statements_through integer
    check (statements_through >= 0);

-- The statements issued from a day on, the count before it, and ingest's
-- latest closing before a new statement: one index range each, in the
-- order the chain is walked. It holds every column those reads take, so
-- that a read of the whole chain through it never goes back to the table
-- row by row.
create index bank_statements_by_closing on bank_statements
    (institution_id, bank_id, account_no, closing_date, received_at, statement_key,
     provisional, opening_minor, opening_date, closing_minor);

-- The kept days from a day on.
create index recon_days_by_day on recon_days (institution_id, bank_id, account_no, day);
