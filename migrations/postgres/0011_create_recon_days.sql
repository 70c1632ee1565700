-- Each statement day's reconciliation as it was recorded: the bank's
-- closing balance, the ledger's balance of that account at the end of that
-- day, what the books said was owed, and the status (agrees, differs,
-- quarantined). A later run that finds other figures for the same day (an
-- entry recorded late with an earlier date, a filled gap) adds a version;
-- nothing is overwritten. Append-only.
create table recon_days (
    institution_id text not null references institutions (institution_id),
    bank_id        text not null,
    account_no     text not null,
    statement_key  text not null,
    version        integer not null check (version > 0),
    day            date not null,
    bank_closing_minor   bigint not null,
    ledger_balance_minor bigint not null,
    owed_minor           bigint not null,
    status         text not null check (status in ('agrees', 'differs', 'quarantined')),
    recorded_at    timestamptz not null,
    primary key (institution_id, bank_id, account_no, statement_key, version),
    foreign key (institution_id, bank_id, account_no, statement_key)
        references bank_statements (institution_id, bank_id, account_no, statement_key)
);

create trigger recon_days_append_only before update or delete on recon_days
    for each row execute function forbid_change();
