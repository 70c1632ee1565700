-- The books: one schema, in PostgreSQL's dialect (migrations/sqlite has the
-- same tables in SQLite's). Every table holding an institution's data leads
-- its primary key with institution_id, and no key spans two institutions, so
-- the schema distributes by institution (Citus) unchanged.

-- Reference data (replicated, not distributed).
create table jurisdictions (
    code        text primary key check (code ~ '^[0-9]{6}$'),
    name        text not null,
    parent_code text references jurisdictions (code),
    created_at  timestamptz not null,
    check ((code = '000000') = (parent_code is null))
);

create table rule_packs (
    jurisdiction_code text not null references jurisdictions (code),
    version           integer not null check (version > 0),
    effective_from    date not null,
    params            text not null,
    created_at        timestamptz not null,
    primary key (jurisdiction_code, version)
);

-- Per institution.
create table institutions (
    institution_id    text primary key,
    name              text not null,
    licence_no        text not null,
    jurisdiction_code text not null references jurisdictions (code),
    mode              text not null check (mode in ('custody', 'deposit', 'both')),
    category          text not null check (category in ('subject', 'non_subject')),
    status            text not null check (status in ('active', 'suspended', 'closed')),
    currency          text not null,
    created_at        timestamptz not null
);

-- The tip of each institution's hash chain; its row lock is the
-- institution's write lock.
create table chain_heads (
    institution_id   text primary key references institutions (institution_id),
    last_seq         bigint not null check (last_seq >= 0),
    last_hash        text not null,
    last_recorded_at timestamptz
);

create table enrollments (
    institution_id text not null references institutions (institution_id),
    enrollment_id  text not null,
    student_ref    text not null,
    hours_bought   integer not null check (hours_bought > 0),
    bonus_hours    integer not null check (bonus_hours >= 0),
    price_minor    bigint not null check (price_minor > 0),
    currency       text not null,
    course_start   date not null,
    course_end     date not null check (course_end >= course_start),
    hours_consumed integer not null default 0 check (hours_consumed >= 0 and hours_consumed <= hours_bought + bonus_hours),
    paid_minor     bigint not null default 0 check (paid_minor >= 0 and paid_minor <= price_minor),
    created_at     timestamptz not null,
    primary key (institution_id, enrollment_id)
);

create table accounts (
    institution_id        text not null references institutions (institution_id),
    account_code          text not null,
    account_type          text not null check (account_type in ('asset', 'liability')),
    currency              text not null,
    posted_debits_minor   bigint not null default 0 check (posted_debits_minor >= 0),
    posted_credits_minor  bigint not null default 0 check (posted_credits_minor >= 0),
    pending_debits_minor  bigint not null default 0 check (pending_debits_minor >= 0),
    pending_credits_minor bigint not null default 0 check (pending_credits_minor >= 0),
    created_at            timestamptz not null,
    primary key (institution_id, account_code)
);

create table entries (
    institution_id text not null references institutions (institution_id),
    seq            bigint not null check (seq > 0),
    client_id      text not null,
    kind           text not null,
    currency       text not null,
    occurred_at    timestamptz not null,
    recorded_at    timestamptz not null,
    external_ref   text,
    enrollment_id  text,
    hours          integer check (hours > 0),
    refers_to_seq  bigint,
    rule_pack      text,
    flags          text not null,
    request_hash   text not null,
    prev_hash      text not null,
    hash           text not null,
    primary key (institution_id, seq),
    unique (institution_id, client_id),
    foreign key (institution_id, refers_to_seq) references entries (institution_id, seq),
    foreign key (institution_id, enrollment_id) references enrollments (institution_id, enrollment_id)
);
-- A pending entry is confirmed or voided once; a posted one reversed once.
create unique index entries_referred_once on entries (institution_id, refers_to_seq)
    where refers_to_seq is not null;
create index entries_by_recorded_at on entries (institution_id, recorded_at);

create table postings (
    institution_id              text not null,
    seq                         bigint not null,
    leg                         smallint not null check (leg >= 0),
    account_code                text not null,
    side                        char(1) not null check (side in ('D', 'C')),
    amount_minor                bigint not null check (amount_minor > 0),
    -- the account's totals right after this posting: any past balance is
    -- one indexed lookup
    posted_debits_after_minor   bigint not null,
    posted_credits_after_minor  bigint not null,
    pending_debits_after_minor  bigint not null,
    pending_credits_after_minor bigint not null,
    primary key (institution_id, seq, leg),
    foreign key (institution_id, seq) references entries (institution_id, seq),
    foreign key (institution_id, account_code) references accounts (institution_id, account_code)
);
create index postings_by_account on postings (institution_id, account_code, seq);

-- Append-only, enforced by the database too: corrections are reversals.
create function forbid_change() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_name, tg_op;
end $$;
create trigger entries_append_only before update or delete on entries
    for each row execute function forbid_change();
create trigger postings_append_only before update or delete on postings
    for each row execute function forbid_change();
