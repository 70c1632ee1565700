-- Rectification notices (整改通知书, issue 18): numbered per jurisdiction
-- and year, with the finding, the required action and a due date; the
-- institution's answers, recorded by an officer. Append-only: an answer is
-- a new row, a notice is never edited.

create table rectification_notices (
    notice_no       text primary key,
    jurisdiction    text not null,
    year            integer not null,
    seq             integer not null check (seq > 0),
    institution_id  text not null references institutions (institution_id),
    alert_key       text,
    finding         text not null,
    required_action text not null,
    due_on          text not null,
    issued_by       text not null,
    issued_at       integer not null,
    unique (jurisdiction, year, seq)
);

create table rectification_answers (
    seq         integer primary key autoincrement,
    notice_no   text not null references rectification_notices (notice_no),
    answer      text not null,
    recorded_by text not null,
    recorded_at integer not null
);

create trigger rectification_notices_no_update before update on rectification_notices
begin select raise(abort, 'rectification_notices is append-only: UPDATE refused'); end;
create trigger rectification_notices_no_delete before delete on rectification_notices
begin select raise(abort, 'rectification_notices is append-only: DELETE refused'); end;
create trigger rectification_answers_no_update before update on rectification_answers
begin select raise(abort, 'rectification_answers is append-only: UPDATE refused'); end;
create trigger rectification_answers_no_delete before delete on rectification_answers
begin select raise(abort, 'rectification_answers is append-only: DELETE refused'); end;

-- White and black lists (黑白名单): each publication is one change of one
-- institution's membership ('white', 'black', or 'none' to take it off),
-- with the reason, numbered per jurisdiction (the version). The current
-- lists are the latest change of each institution. Append-only.
create table list_changes (
    jurisdiction   text not null,
    version        integer not null check (version > 0),
    institution_id text not null references institutions (institution_id),
    list           text not null check (list in ('white', 'black', 'none')),
    reason         text not null,
    published_by   text not null,
    published_at   integer not null,
    primary key (jurisdiction, version)
);

create trigger list_changes_no_update before update on list_changes
begin select raise(abort, 'list_changes is append-only: UPDATE refused'); end;
create trigger list_changes_no_delete before delete on list_changes
begin select raise(abort, 'list_changes is append-only: DELETE refused'); end;
