-- What the supervising banks report (see migrations/postgres/0002).

create table banks (
    bank_id    text primary key,
    name       text not null,
    created_at integer not null
);

create table bank_accounts (
    institution_id text not null references institutions (institution_id),
    bank_id        text not null references banks (bank_id),
    account_no     text not null,
    kind           text not null check (kind in ('escrow', 'deposit')),
    currency       text not null,
    created_at     integer not null,
    primary key (institution_id, bank_id, account_no)
);
create index bank_accounts_by_number on bank_accounts (bank_id, account_no);

create table feed_files (
    bank_id     text not null references banks (bank_id),
    file_sha256 text not null,
    format      text not null,
    byte_len    integer not null,
    statements  integer not null,
    received_at integer not null,
    primary key (bank_id, file_sha256)
);

create table bank_statements (
    institution_id text not null,
    bank_id        text not null,
    account_no     text not null,
    statement_key  text not null,
    statement_id   text not null,
    sequence       text,
    format         text not null,
    currency       text not null,
    provisional    integer not null,
    opening_minor  integer,
    opening_date   text,
    closing_minor  integer,
    closing_date   text,
    line_count     integer not null,
    content_hash   text not null,
    file_sha256    text not null,
    message        integer not null,
    received_at    integer not null,
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
    amount_minor         integer not null,
    booking_date         text,
    value_date           text,
    status               text not null check (status in ('booked', 'pending', 'info')),
    bank_ref             text,
    end_to_end_id        text,
    remittance           text,
    counterparty_name    text,
    counterparty_account text,
    bank_tx_code         text,
    reversal             integer not null,
    return_reason        text,
    details              text not null,
    source_line          integer,
    source_path          text,
    primary key (institution_id, bank_id, account_no, statement_key, line_no),
    foreign key (institution_id, bank_id, account_no, statement_key)
        references bank_statements (institution_id, bank_id, account_no, statement_key)
);
create index bank_lines_by_end_to_end_id on bank_lines (institution_id, end_to_end_id)
    where end_to_end_id is not null;

create trigger bank_statements_no_update before update on bank_statements
begin select raise(abort, 'bank_statements is append-only: UPDATE refused'); end;
create trigger bank_statements_no_delete before delete on bank_statements
begin select raise(abort, 'bank_statements is append-only: DELETE refused'); end;
create trigger bank_lines_no_update before update on bank_lines
begin select raise(abort, 'bank_lines is append-only: UPDATE refused'); end;
create trigger bank_lines_no_delete before delete on bank_lines
begin select raise(abort, 'bank_lines is append-only: DELETE refused'); end;
