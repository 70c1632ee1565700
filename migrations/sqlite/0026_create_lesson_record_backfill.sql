-- Lesson records, their steps and freezes join the institutions' record
-- chains (verify walks them). Those written before are linked once, by the
-- first migrate after this migration, which claims this row.

create table record_backfill_lessons (
    id        integer primary key check (id = 1),
    linked_at integer not null
);

-- SQLite cannot change a CHECK constraint: record_links is rebuilt with
-- the same rows (and its append-only triggers again).
create table record_links_0026 (
    institution_id text not null,
    seq            integer not null check (seq > 0),
    kind           text not null check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee',
                                                 'lesson', 'lesson_event', 'freeze')),
    record_key     text not null,
    digest         text not null,
    prev_hash      text not null,
    hash           text not null,
    primary key (institution_id, seq),
    unique (institution_id, kind, record_key)
);
insert into record_links_0026 select institution_id, seq, kind, record_key, digest, prev_hash, hash from record_links;
drop table record_links;
alter table record_links_0026 rename to record_links;
create trigger record_links_no_update before update on record_links
begin select raise(abort, 'record_links is append-only: UPDATE refused'); end;
create trigger record_links_no_delete before delete on record_links
begin select raise(abort, 'record_links is append-only: DELETE refused'); end;
