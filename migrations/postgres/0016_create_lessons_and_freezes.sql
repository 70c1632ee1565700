-- Lessons delivered are a request until the family confirms them (课消确认):
-- each record, and every step of its trail (confirmed, disputed, deemed
-- confirmed, a dispute upheld or rejected) with who, when and why. Only an
-- earned record becomes a lessons_consumed entry (client id lesson-<id>).
-- Officers' freezes of an institution's releases, and their lifts. Families
-- as users: a family token is scoped to one enrollment. All append-only.

create table lessons (
    institution_id text not null,
    lesson_id      text not null,
    enrollment_id  text not null,
    hours          integer not null check (hours > 0),
    occurred_on    date not null,
    recorded_by    text not null,
    recorded_at    timestamptz not null,
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
    at             timestamptz not null,
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
    at             timestamptz not null,
    primary key (institution_id, seq)
);

create trigger lessons_append_only before update or delete on lessons
    for each row execute function forbid_change();
create trigger lessons_no_truncate before truncate on lessons
    for each statement execute function forbid_change();
create trigger lesson_events_append_only before update or delete on lesson_events
    for each row execute function forbid_change();
create trigger lesson_events_no_truncate before truncate on lesson_events
    for each statement execute function forbid_change();
create trigger institution_freezes_append_only before update or delete on institution_freezes
    for each row execute function forbid_change();
create trigger institution_freezes_no_truncate before truncate on institution_freezes
    for each statement execute function forbid_change();

alter table api_tokens drop constraint api_tokens_role_check;
alter table api_tokens add constraint api_tokens_role_check
    check (role in ('officer', 'bank', 'institution', 'platform', 'admin', 'family'));
alter table api_tokens drop constraint api_tokens_scope_kind_check;
alter table api_tokens add constraint api_tokens_scope_kind_check
    check (scope_kind in ('all', 'jurisdiction', 'institution', 'bank', 'enrollment'));
