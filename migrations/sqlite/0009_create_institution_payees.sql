-- Where an institution's released tuition (拨付) is paid: its own account,
-- set by an officer. Every change is a new version; the latest one is used
-- when a release instruction is sent, and none is ever rewritten.
create table institution_payees (
    institution_id text not null references institutions (institution_id),
    version        integer not null check (version > 0),
    name           text not null,
    account        text not null,
    bank           text not null,
    set_by         text not null,
    set_at         integer not null,
    primary key (institution_id, version)
);

create trigger institution_payees_no_update before update on institution_payees
begin select raise(abort, 'institution_payees is append-only: UPDATE refused'); end;
create trigger institution_payees_no_delete before delete on institution_payees
begin select raise(abort, 'institution_payees is append-only: DELETE refused'); end;
