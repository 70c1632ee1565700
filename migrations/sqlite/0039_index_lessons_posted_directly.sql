-- Lessons posted straight into the books (not through a lesson record,
-- whose entries carry the record's `lesson-` client id), by enrollment:
-- what recording a lesson counts against the package besides the records.
-- Without it each record recorded walked every entry of the institution.
-- Partial, so that the books of an institution whose families confirm its
-- lessons keep it nearly empty.
create index entries_lessons_posted_directly on entries (institution_id, enrollment_id)
    where kind = 'lessons_consumed' and client_id not like 'lesson-%';
