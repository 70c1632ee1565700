-- An enrollment's lesson records: what recording a lesson counts against
-- the package's hours, and an enrollment's account of its records. Without
-- it each read walked every record of the institution.
create index lessons_by_enrollment on lessons (institution_id, enrollment_id);
