-- Reconciliation reads, for each institution, the transfers no kept match
-- claims yet (and the entries that settle them). Finding them by walking
-- every entry of the institution grows with history, though almost every
-- transfer is claimed within days. Claims are never deleted, so a transfer
-- claimed once stays claimed: for each institution the daily recording
-- keeps a mark and the transfers up to it that were still unclaimed when
-- the mark moved. Every transfer at or below the mark that is not listed
-- is claimed; a read takes the listed ones (less those claimed since) and
-- the entries after the mark. Nothing else writes here, and dropping a
-- mark only makes the next read walk the whole history again.
create table recon_open_marks (
    institution_id text primary key references institutions (institution_id),
    through_seq    bigint not null check (through_seq >= 0)
);

create table recon_open_transfers (
    institution_id text not null,
    seq            bigint not null,
    primary key (institution_id, seq),
    foreign key (institution_id, seq) references entries (institution_id, seq)
);
