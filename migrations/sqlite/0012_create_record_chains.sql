-- Hash chains over what the books do not hash themselves (see the
-- PostgreSQL file of the same number for the why).

create table record_heads (
    institution_id text primary key references institutions (institution_id),
    last_seq       integer not null check (last_seq >= 0),
    last_hash      text not null
);

create table record_links (
    institution_id text not null,
    seq            integer not null check (seq > 0),
    kind           text not null check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee')),
    record_key     text not null,
    digest         text not null,
    prev_hash      text not null,
    hash           text not null,
    primary key (institution_id, seq),
    unique (institution_id, kind, record_key)
);

create table audit_head (
    id        integer primary key check (id = 1),
    last_seq  integer not null check (last_seq >= 0),
    last_hash text not null
);
insert into audit_head (id, last_seq, last_hash)
    values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

create table audit_links (
    seq       integer primary key,
    digest    text not null,
    prev_hash text not null,
    hash      text not null
);

create table record_backfill (
    id        integer primary key check (id = 1),
    linked_at integer not null
);

create trigger record_links_no_update before update on record_links
begin select raise(abort, 'record_links is append-only: UPDATE refused'); end;
create trigger record_links_no_delete before delete on record_links
begin select raise(abort, 'record_links is append-only: DELETE refused'); end;
create trigger audit_links_no_update before update on audit_links
begin select raise(abort, 'audit_links is append-only: UPDATE refused'); end;
create trigger audit_links_no_delete before delete on audit_links
begin select raise(abort, 'audit_links is append-only: DELETE refused'); end;
create trigger record_heads_no_delete before delete on record_heads
begin select raise(abort, 'record_heads is append-only: DELETE refused'); end;
create trigger audit_head_no_delete before delete on audit_head
begin select raise(abort, 'audit_head is append-only: DELETE refused'); end;
