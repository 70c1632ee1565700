-- Reconciliation outcomes: matches of bank lines to journal entries, and
-- the claims that make each bank line and each entry matched at most once
-- (enforced here, by the primary keys, not only by code).

create table recon_matches (
    institution_id text not null references institutions (institution_id),
    match_id       text not null,
    bank_id        text not null,
    account_no     text not null,
    pass           text not null,
    -- automatic and confirmed matches hold claims; suggestions wait for an officer
    status         text not null check (status in ('automatic', 'suggested', 'confirmed', 'rejected')),
    explanation    text not null,
    created_at     integer not null,
    primary key (institution_id, match_id)
);

create table recon_line_claims (
    institution_id text not null,
    bank_id        text not null,
    account_no     text not null,
    statement_key  text not null,
    line_no        integer not null,
    match_id       text not null,
    primary key (institution_id, bank_id, account_no, statement_key, line_no),
    foreign key (institution_id, bank_id, account_no, statement_key, line_no)
        references bank_lines (institution_id, bank_id, account_no, statement_key, line_no),
    foreign key (institution_id, match_id) references recon_matches (institution_id, match_id)
);

create table recon_entry_claims (
    institution_id text not null,
    entry_seq      bigint not null,
    match_id       text not null,
    primary key (institution_id, entry_seq),
    foreign key (institution_id, entry_seq) references entries (institution_id, seq),
    foreign key (institution_id, match_id) references recon_matches (institution_id, match_id)
);
