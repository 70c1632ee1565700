-- What happened to an institution outside its books that bears on run-off
-- risk (a change of legal representative, a notice of closure), as an
-- officer or the platform reported it. Append-only.
create table institution_events (
    institution_id text not null references institutions (institution_id),
    seq            integer not null check (seq > 0),
    kind           text not null check (kind in ('legal_representative_change', 'closure_notice')),
    occurred_on    date not null,
    note           text,
    recorded_by    text not null,
    recorded_at    integer not null,
    primary key (institution_id, seq)
);

create trigger institution_events_no_update before update on institution_events
begin select raise(abort, 'institution_events is append-only: UPDATE refused'); end;
create trigger institution_events_no_delete before delete on institution_events
begin select raise(abort, 'institution_events is append-only: DELETE refused'); end;
