-- Scheduled jobs (the daily risk scan, the hourly reconciliation): a run is
-- claimed by inserting its slot, so two service processes on one database
-- never run the same job for the same slot twice.
create table job_runs (
    job        text not null,
    slot       text not null,
    claimed_by text not null,
    claimed_at integer not null,
    primary key (job, slot)
);
