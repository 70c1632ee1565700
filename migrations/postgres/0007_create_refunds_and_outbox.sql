-- The refund workflow (request, approval or deemed approval, instruction,
-- payment or return) and the outbox of bank instructions.
--
-- The outbox gets one row for every pending entry (a release, a refund
-- payment, a deposit return: money the bank must move), written by the same
-- transaction as the entry, so an instruction can never be recorded and
-- forgotten, whatever crashes when.

create table refunds (
    institution_id text not null references institutions (institution_id),
    refund_id      text not null,
    enrollment_id  text not null,
    -- null: everything not yet consumed.
    amount_minor   bigint check (amount_minor is null or amount_minor > 0),
    payee_name     text not null,
    payee_account  text not null,
    payee_bank     text not null,
    reason         text,
    requested_by   text not null,
    requested_on   date not null,
    answer_by      date not null,
    state          text not null check (state in ('requested', 'approved', 'instructed', 'paid', 'returned', 'declined')),
    pay_by         date,
    instruction_id text,
    updated_at     timestamptz not null,
    primary key (institution_id, refund_id),
    foreign key (institution_id, enrollment_id) references enrollments (institution_id, enrollment_id)
);

create table refund_events (
    institution_id text not null,
    refund_id      text not null,
    seq            integer not null,
    at             timestamptz not null,
    actor          text not null,
    state          text not null,
    detail         text,
    primary key (institution_id, refund_id, seq),
    foreign key (institution_id, refund_id) references refunds (institution_id, refund_id)
);

create table outbox (
    institution_id  text not null references institutions (institution_id),
    instruction_id  text not null,
    kind            text not null,
    amount_minor    bigint not null check (amount_minor > 0),
    currency        text not null,
    state           text not null check (state in ('pending', 'accepted', 'executed', 'rejected')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    lease_until     timestamptz,
    bank_ref        text,
    last_error      text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    primary key (institution_id, instruction_id)
);

create index outbox_by_state on outbox (state, next_attempt_at);

create trigger refund_events_append_only before update or delete on refund_events
    for each row execute function forbid_change();
