-- Suggestions keep what they would claim, and officers' decisions on them
-- are an append-only trail of who decided what when.

alter table recon_matches add column members text not null default '{"lines":[],"entries":[]}';

create table recon_decisions (
    institution_id text not null,
    match_id       text not null,
    seq            integer not null,
    decision       text not null check (decision in ('confirmed', 'rejected')),
    decided_by     text not null,
    comment        text,
    decided_at     integer not null,
    primary key (institution_id, match_id, seq),
    foreign key (institution_id, match_id) references recon_matches (institution_id, match_id)
);

create trigger recon_decisions_no_update before update on recon_decisions
begin select raise(abort, 'recon_decisions is append-only: UPDATE refused'); end;
create trigger recon_decisions_no_delete before delete on recon_decisions
begin select raise(abort, 'recon_decisions is append-only: DELETE refused'); end;
