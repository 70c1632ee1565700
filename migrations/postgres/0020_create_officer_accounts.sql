-- The console's people (issue 18): officer accounts with Argon2id password
-- hashes, their sign-in attempts (for lockout), and server-side sessions.
-- Every table is append-only: a password reset is a new password row (the
-- latest counts), a sign-out is a session end row.

create table officer_accounts (
    login       text primary key,
    name        text not null,
    role        text not null check (role in ('officer', 'admin')),
    scope_kind  text not null check (scope_kind in ('all', 'jurisdiction')),
    scope_id    text,
    created_at  timestamptz not null,
    check ((scope_kind = 'all') = (scope_id is null))
);

create table officer_passwords (
    seq           bigserial primary key,
    login         text not null references officer_accounts (login),
    password_hash text not null,
    set_at        timestamptz not null
);

create table sign_in_attempts (
    seq        bigserial primary key,
    login      text not null,
    at         timestamptz not null,
    succeeded  integer not null check (succeeded in (0, 1))
);
create index sign_in_attempts_by_login on sign_in_attempts (login, at);

create table console_sessions (
    session_hash text primary key,
    login        text not null references officer_accounts (login),
    csrf_token   text not null,
    created_at   timestamptz not null,
    expires_at   timestamptz not null
);

create table console_session_ends (
    session_hash text primary key references console_sessions (session_hash),
    ended_at     timestamptz not null
);

create trigger officer_accounts_append_only before update or delete on officer_accounts
    for each row execute function forbid_change();
create trigger officer_accounts_no_truncate before truncate on officer_accounts
    for each statement execute function forbid_change();
create trigger officer_passwords_append_only before update or delete on officer_passwords
    for each row execute function forbid_change();
create trigger officer_passwords_no_truncate before truncate on officer_passwords
    for each statement execute function forbid_change();
create trigger sign_in_attempts_append_only before update or delete on sign_in_attempts
    for each row execute function forbid_change();
create trigger sign_in_attempts_no_truncate before truncate on sign_in_attempts
    for each statement execute function forbid_change();
create trigger console_sessions_append_only before update or delete on console_sessions
    for each row execute function forbid_change();
create trigger console_sessions_no_truncate before truncate on console_sessions
    for each statement execute function forbid_change();
create trigger console_session_ends_append_only before update or delete on console_session_ends
    for each row execute function forbid_change();
create trigger console_session_ends_no_truncate before truncate on console_session_ends
    for each statement execute function forbid_change();
