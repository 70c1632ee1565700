-- Hash chains over what the books do not hash themselves, so `verify` (and a
-- signed checkpoint kept outside the database) can tell when a row was
-- edited or removed behind the application's back.
--
-- Per institution, one chain of record links: an enrollment's contract, a
-- bank statement with its lines, a refund's fixed terms (its payee), each refund event, each payee
-- version. Each link holds the SHA-256 digest of its record's canonical
-- encoding and chains to the previous link (domain/chain.rs documents both),
-- written in the same transaction as the record. One chain for the audit
-- log (deployment-wide, like the log itself).

-- The tip of an institution's record chain; its row lock serialises the
-- institution's record writes (not its ledger batches: those lock chain_heads).
create table record_heads (
    institution_id text primary key references institutions (institution_id),
    last_seq       bigint not null check (last_seq >= 0),
    last_hash      text not null
);

create table record_links (
    institution_id text not null,
    seq            bigint not null check (seq > 0),
    kind           text not null check (kind in ('enrollment', 'statement', 'refund', 'refund_event', 'payee')),
    record_key     text not null,
    digest         text not null,
    prev_hash      text not null,
    hash           text not null,
    primary key (institution_id, seq),
    unique (institution_id, kind, record_key)
);

-- The audit log's chain tip (one row) and one link per audit record, by the
-- record's seq.
create table audit_head (
    id        integer primary key check (id = 1),
    last_seq  bigint not null check (last_seq >= 0),
    last_hash text not null
);
insert into audit_head (id, last_seq, last_hash)
    values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

create table audit_links (
    seq       bigint primary key,
    digest    text not null,
    prev_hash text not null,
    hash      text not null
);

-- Records written before this migration are linked once, by the first
-- `migrate` that finds this table empty (in id order); later ones only by
-- the application, as they are written.
create table record_backfill (
    id        integer primary key check (id = 1),
    linked_at timestamptz not null
);

create trigger record_links_append_only before update or delete on record_links
    for each row execute function forbid_change();
create trigger audit_links_append_only before update or delete on audit_links
    for each row execute function forbid_change();
create trigger record_heads_no_delete before delete on record_heads
    for each row execute function forbid_change();
create trigger audit_head_no_delete before delete on audit_head
    for each row execute function forbid_change();
