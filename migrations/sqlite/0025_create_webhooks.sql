-- Signed outbound webhooks: subscriptions scoped like tokens (a jurisdiction
-- and everything below it, or one institution), the deliveries queued for
-- each (one per subscription and event: the event id is the receiver's
-- dedupe key), and the delivery log, append-only: every attempt with its
-- answer. Events are not copied here first: they are read from the records
-- that already say what happened (red alerts, refund events, lesson
-- records, executed release instructions), each under an id fixed by its
-- record.

create table webhook_subscriptions (
    subscription_id text primary key,
    url             text not null,
    -- The HMAC key the receiver checks signatures with; it must be kept to
    -- sign, so it is stored (unlike a token's secret).
    secret          text not null,
    -- Comma-separated event types.
    events          text not null,
    scope_kind      text not null check (scope_kind in ('jurisdiction', 'institution')),
    scope_id        text not null,
    created_by      text not null,
    created_at      integer not null,
    -- Events recorded up to here are queued.
    scanned_to      integer not null
);

create table webhook_deliveries (
    institution_id  text not null,
    subscription_id text not null references webhook_subscriptions (subscription_id),
    event_id        text not null,
    event_type      text not null,
    occurred_at     integer not null,
    payload         text not null,
    state           text not null check (state in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at integer not null,
    lease_until     integer,
    delivered_at    integer,
    created_at      integer not null,
    primary key (institution_id, subscription_id, event_id)
);

create index webhook_deliveries_due on webhook_deliveries (state, next_attempt_at);

create table webhook_attempts (
    institution_id  text not null,
    subscription_id text not null,
    event_id        text not null,
    attempt         integer not null check (attempt > 0),
    at              integer not null,
    -- The receiver's HTTP status, when it answered.
    status          integer,
    error           text,
    -- A replay asked by someone (who), not the schedule.
    replayed_by     text,
    primary key (institution_id, subscription_id, event_id, attempt),
    foreign key (institution_id, subscription_id, event_id)
        references webhook_deliveries (institution_id, subscription_id, event_id)
);

create trigger webhook_attempts_no_update before update on webhook_attempts
begin select raise(abort, 'webhook_attempts is append-only: UPDATE refused'); end;
create trigger webhook_attempts_no_delete before delete on webhook_attempts
begin select raise(abort, 'webhook_attempts is append-only: DELETE refused'); end;
