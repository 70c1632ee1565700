-- What the supervising banks report: their statements, line by line, as
-- received (append-only), and which supervised account belongs to whom.

create table banks (
    bank_id    text primary key,
    name       text not null,
    created_at timestamptz not null
);

-- Keyed by institution first like every institution table; a bank account
-- number belongs to one institution (checked when it is registered).
create table bank_accounts (
    institution_id text not null references institutions (institution_id),
    bank_id        text not null references banks (bank_id),
    account_no     text not null,
    kind           text not null check (kind in ('escrow', 'deposit')),
    currency       text not null,
    created_at     timestamptz not null,
    primary key (institution_id, bank_id, account_no)
);
create index bank_accounts_by_number on bank_accounts (bank_id, account_no);

-- A bank's files, by content: the same file twice is recognised.
create table feed_files (
    bank_id     text not null references banks (bank_id),
    file_sha256 text not null,
    format      text not null,
    byte_len    bigint not null,
    statements  integer not null,
    received_at timestamptz not null,
    primary key (bank_id, file_sha256)
);

create table bank_statements (
    institution_id text not null,
    bank_id        text not null,
    account_no     text not null,
    -- statement id and page, unique per account
    statement_key  text not null,
    statement_id   text not null,
    sequence       text,
    format         text not null,
    currency       text not null,
    -- intraday reports and notifications, until an end-of-day statement confirms them
    provisional    boolean not null,
    opening_minor  bigint,
    opening_date   date,
    closing_minor  bigint,
    closing_date   date,
    line_count     integer not null,
    content_hash   text not null,
    file_sha256    text not null,
    message        integer not null,
    received_at    timestamptz not null,
    primary key (institution_id, bank_id, account_no, statement_key),
    foreign key (institution_id, bank_id, account_no)
        references bank_accounts (institution_id, bank_id, account_no)
);

create table bank_lines (
    institution_id       text not null,
    bank_id              text not null,
    account_no           text not null,
    statement_key        text not null,
    line_no              integer not null,
    amount_minor         bigint not null,
    booking_date         date,
    value_date           date,
    status               text not null check (status in ('booked', 'pending', 'info')),
    bank_ref             text,
    end_to_end_id        text,
    remittance           text,
    counterparty_name    text,
    counterparty_account text,
    bank_tx_code         text,
    reversal             boolean not null,
    return_reason        text,
    -- batch children and structured fields, as JSON
    details              text not null,
    source_line          integer,
    source_path          text,
    primary key (institution_id, bank_id, account_no, statement_key, line_no),
    foreign key (institution_id, bank_id, account_no, statement_key)
        references bank_statements (institution_id, bank_id, account_no, statement_key)
);
create index bank_lines_by_end_to_end_id on bank_lines (institution_id, end_to_end_id)
    where end_to_end_id is not null;

create trigger bank_statements_append_only before update or delete on bank_statements
    for each row execute function forbid_change();
create trigger bank_lines_append_only before update or delete on bank_lines
    for each row execute function forbid_change();
