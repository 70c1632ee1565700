-- API access: bearer tokens (kept only as a SHA-256 hash of the secret),
-- the audit log of every mutating request, and the answers kept so that a
-- request repeated with the same Idempotency-Key gets the same answer.

create table api_tokens (
    token_id    text primary key,
    name        text not null,
    role        text not null check (role in ('officer', 'bank', 'institution', 'platform', 'admin')),
    scope_kind  text not null check (scope_kind in ('all', 'jurisdiction', 'institution', 'bank')),
    scope_id    text,
    secret_hash text not null unique,
    created_at  timestamptz not null,
    revoked_at  timestamptz,
    check ((scope_kind = 'all') = (scope_id is null))
);

create table audit_log (
    seq        bigserial primary key,
    at         timestamptz not null,
    request_id text not null,
    token_id   text,
    role       text,
    method     text not null,
    path       text not null,
    status     integer not null,
    outcome    text not null
);

create trigger audit_log_append_only before update or delete on audit_log
    for each row execute function forbid_change();

create table idempotent_answers (
    token_id     text not null,
    idem_key     text not null,
    request_hash text not null,
    status       integer not null,
    body         text not null,
    created_at   timestamptz not null,
    primary key (token_id, idem_key)
);

create trigger idempotent_answers_append_only before update or delete on idempotent_answers
    for each row execute function forbid_change();
