-- The lesson records nobody has answered yet: what the lessons job reads
-- on every pass (every 5 s by default) to deem those past their day.
-- Before, each pass walked every record ever kept looking for one with no
-- step, a cost that grew with the years of records. A queue, not history
-- (the records and their trails stay append-only): a row enters with its
-- record and leaves when the record's first step is written, each in the
-- same transaction.
create table lessons_unanswered (
    institution_id text not null,
    lesson_id      text not null,
    answer_by      date not null,
    primary key (institution_id, lesson_id),
    foreign key (institution_id, lesson_id) references lessons (institution_id, lesson_id)
);

insert into lessons_unanswered (institution_id, lesson_id, answer_by)
select l.institution_id, l.lesson_id, l.answer_by from lessons l
where not exists (
    select 1 from lesson_events e
    where e.institution_id = l.institution_id and e.lesson_id = l.lesson_id
);

-- How many lesson records each institution has kept: the next record's
-- number (L<n>), where recording one counted them all before.
create table lesson_numbers (
    institution_id text primary key references institutions (institution_id),
    recorded       bigint not null check (recorded >= 0)
);

insert into lesson_numbers (institution_id, recorded)
select institution_id, count(*) from lessons group by institution_id;
