-- Lesson records, their steps and freezes join the institutions' record
-- chains (verify walks them). Those written before are linked once, by the
-- first migrate after this migration, which claims this row.

create table record_backfill_lessons (
    id        integer primary key check (id = 1),
    linked_at timestamptz not null
);

alter table record_links drop constraint record_links_kind_check;
alter table record_links add constraint record_links_kind_check
    check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee',
                    'lesson', 'lesson_event', 'freeze'));
