-- Lessons delivered are a request until the family confirms them, officers'
-- freezes of releases, and family tokens (see the PostgreSQL file of the
-- same number). SQLite cannot change a CHECK constraint: api_tokens is
-- rebuilt with the same rows.

create table lessons (
    institution_id text not null,
    lesson_id      text not null,
    enrollment_id  text not null,
    hours          integer not null check (hours > 0),
    occurred_on    date not null,
    recorded_by    text not null,
    recorded_at    integer not null,
    answer_by      date not null,
    request_key    text,
    primary key (institution_id, lesson_id),
    foreign key (institution_id, enrollment_id) references enrollments (institution_id, enrollment_id)
);

create unique index lessons_request_key on lessons (institution_id, request_key);

create table lesson_events (
    institution_id text not null,
    lesson_id      text not null,
    seq            integer not null check (seq > 0),
    at             integer not null,
    on_day         date not null,
    actor          text not null,
    state          text not null check (state in ('confirmed', 'disputed', 'deemed_confirmed', 'upheld', 'dispute_rejected')),
    reason         text,
    primary key (institution_id, lesson_id, seq),
    foreign key (institution_id, lesson_id) references lessons (institution_id, lesson_id)
);

create table institution_freezes (
    institution_id text not null references institutions (institution_id),
    seq            integer not null check (seq > 0),
    frozen         boolean not null,
    reason         text not null,
    actor          text not null,
    at             integer not null,
    primary key (institution_id, seq)
);

create trigger lessons_no_update before update on lessons
begin select raise(abort, 'lessons is append-only: UPDATE refused'); end;
create trigger lessons_no_delete before delete on lessons
begin select raise(abort, 'lessons is append-only: DELETE refused'); end;
create trigger lesson_events_no_update before update on lesson_events
begin select raise(abort, 'lesson_events is append-only: UPDATE refused'); end;
create trigger lesson_events_no_delete before delete on lesson_events
begin select raise(abort, 'lesson_events is append-only: DELETE refused'); end;
create trigger institution_freezes_no_update before update on institution_freezes
begin select raise(abort, 'institution_freezes is append-only: UPDATE refused'); end;
create trigger institution_freezes_no_delete before delete on institution_freezes
begin select raise(abort, 'institution_freezes is append-only: DELETE refused'); end;

create table api_tokens_0016 (
    token_id    text primary key,
    name        text not null,
    role        text not null check (role in ('officer', 'bank', 'institution', 'platform', 'admin', 'family')),
    scope_kind  text not null check (scope_kind in ('all', 'jurisdiction', 'institution', 'bank', 'enrollment')),
    scope_id    text,
    secret_hash text not null unique,
    created_at  integer not null,
    revoked_at  integer,
    check ((scope_kind = 'all') = (scope_id is null))
);
insert into api_tokens_0016 select token_id, name, role, scope_kind, scope_id, secret_hash, created_at, revoked_at from api_tokens;
drop table api_tokens;
alter table api_tokens_0016 rename to api_tokens;
