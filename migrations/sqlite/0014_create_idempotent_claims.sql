-- A request holds its Idempotency-Key from acceptance until its answer is
-- kept (idempotent_answers). A concurrent repeat finds the claim and waits
-- or is told to retry; a repeat after a crash takes the claim over once its
-- lease has run out, and reuses the instant the first attempt was accepted
-- at, so that server-filled defaults (occurred_at, requested_on) do not
-- change between attempts. Claims are working state, not books: a refused
-- request gives its claim back so the key can be used again.
create table idempotent_claims (
    token_id     text not null,
    idem_key     text not null,
    request_hash text not null,
    accepted_at  integer not null,
    lease_until  integer not null,
    attempts     integer not null default 1 check (attempts > 0),
    primary key (token_id, idem_key)
);
