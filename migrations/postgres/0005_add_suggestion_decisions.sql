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
    decided_at     timestamptz not null,
    primary key (institution_id, match_id, seq),
    foreign key (institution_id, match_id) references recon_matches (institution_id, match_id)
);

create trigger recon_decisions_append_only before update or delete on recon_decisions
    for each row execute function forbid_change();
