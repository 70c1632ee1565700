-- How far an account's statement chain is settled, kept with the
-- watermark by the recording run of reconciliation: every end-of-day
-- statement issued on or before `chain_through` chains to the one before
-- it, and every statement day up to it is kept. `statements_through` is how
-- many statements issued on or before that day the run saw: a statement
-- that arrives later for such a day changes the count, and the next run
-- reads the whole chain again. Without a mark (or with a count that no
-- longer holds) the run reads every statement, as before.
alter table recon_watermarks add column chain_through date;
alter table recon_watermarks add column statements_through bigint
    check (statements_through >= 0);

-- The statements issued from a day on, the count before it, and ingest's
-- latest closing before a new statement: one index range each, in the
-- order the chain is walked. Partial, for end-of-day statements (every
-- read it serves asks for them): without statistics PostgreSQL preferred
-- a full one for the risk scan's join of lines to their statement, with
-- the statement key only as a filter, and walked every statement of the
-- account for each line.
create index bank_statements_by_closing on bank_statements
    (institution_id, bank_id, account_no, closing_date, received_at)
    include (statement_key, opening_minor, opening_date, closing_minor)
    where not provisional;

-- The kept days from a day on.
create index recon_days_by_day on recon_days (institution_id, bank_id, account_no, day);
