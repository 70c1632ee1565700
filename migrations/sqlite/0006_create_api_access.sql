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
    created_at  integer not null,
    revoked_at  integer,
    check ((scope_kind = 'all') = (scope_id is null))
);

create table audit_log (
    seq        integer primary key autoincrement,
    at         integer not null,
    request_id text not null,
    token_id   text,
    role       text,
    method     text not null,
    path       text not null,
    status     integer not null,
    outcome    text not null
);

create trigger audit_log_no_update before update on audit_log
begin select raise(abort, 'audit_log is append-only: UPDATE refused'); end;
create trigger audit_log_no_delete before delete on audit_log
begin select raise(abort, 'audit_log is append-only: DELETE refused'); end;

create table idempotent_answers (
    token_id     text not null,
    idem_key     text not null,
    request_hash text not null,
    status       integer not null,
    body         text not null,
    created_at   integer not null,
    primary key (token_id, idem_key)
);

create trigger idempotent_answers_no_update before update on idempotent_answers
begin select raise(abort, 'idempotent_answers is append-only: UPDATE refused'); end;
create trigger idempotent_answers_no_delete before delete on idempotent_answers
begin select raise(abort, 'idempotent_answers is append-only: DELETE refused'); end;
