-- An event reported over HTTP carries a key derived from its reporter and
-- Idempotency-Key, so that a retry after a lost answer finds the event the
-- first attempt recorded instead of recording it twice. Events recorded
-- before this migration have none.
alter table institution_events add column request_key text;
create unique index institution_events_request_key
    on institution_events (institution_id, request_key);
