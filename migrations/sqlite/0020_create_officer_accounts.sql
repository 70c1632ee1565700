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
    created_at  integer not null,
    check ((scope_kind = 'all') = (scope_id is null))
);

create table officer_passwords (
    seq           integer primary key autoincrement,
    login         text not null references officer_accounts (login),
    password_hash text not null,
    set_at        integer not null
);

create table sign_in_attempts (
    seq        integer primary key autoincrement,
    login      text not null,
    at         integer not null,
    succeeded  integer not null check (succeeded in (0, 1))
);
create index sign_in_attempts_by_login on sign_in_attempts (login, at);

create table console_sessions (
    session_hash text primary key,
    login        text not null references officer_accounts (login),
    csrf_token   text not null,
    created_at   integer not null,
    expires_at   integer not null
);

create table console_session_ends (
    session_hash text primary key references console_sessions (session_hash),
    ended_at     integer not null
);

create trigger officer_accounts_no_update before update on officer_accounts
begin select raise(abort, 'officer_accounts is append-only: UPDATE refused'); end;
create trigger officer_accounts_no_delete before delete on officer_accounts
begin select raise(abort, 'officer_accounts is append-only: DELETE refused'); end;
create trigger officer_passwords_no_update before update on officer_passwords
begin select raise(abort, 'officer_passwords is append-only: UPDATE refused'); end;
create trigger officer_passwords_no_delete before delete on officer_passwords
begin select raise(abort, 'officer_passwords is append-only: DELETE refused'); end;
create trigger sign_in_attempts_no_update before update on sign_in_attempts
begin select raise(abort, 'sign_in_attempts is append-only: UPDATE refused'); end;
create trigger sign_in_attempts_no_delete before delete on sign_in_attempts
begin select raise(abort, 'sign_in_attempts is append-only: DELETE refused'); end;
create trigger console_sessions_no_update before update on console_sessions
begin select raise(abort, 'console_sessions is append-only: UPDATE refused'); end;
create trigger console_sessions_no_delete before delete on console_sessions
begin select raise(abort, 'console_sessions is append-only: DELETE refused'); end;
create trigger console_session_ends_no_update before update on console_session_ends
begin select raise(abort, 'console_session_ends is append-only: UPDATE refused'); end;
create trigger console_session_ends_no_delete before delete on console_session_ends
begin select raise(abort, 'console_session_ends is append-only: DELETE refused'); end;
