-- Batches keep the rule packs they read between batches
-- (`store/rule_cache.rs`) for as long as this count stays the same. Every
-- change to `rule_packs` moves it, in the transaction that makes the
-- change, so whoever reads the count before the packs never keeps packs
-- older than the count. (Packs are only ever added by the service; a
-- change by hand is counted all the same.)
create table rule_pack_generation (
    only_row   integer primary key check (only_row = 1),
    generation integer not null
);
insert into rule_pack_generation (only_row, generation) values (1, 0);

create trigger rule_packs_counted_insert after insert on rule_packs
begin update rule_pack_generation set generation = generation + 1 where only_row = 1; end;
create trigger rule_packs_counted_update after update on rule_packs
begin update rule_pack_generation set generation = generation + 1 where only_row = 1; end;
create trigger rule_packs_counted_delete after delete on rule_packs
begin update rule_pack_generation set generation = generation + 1 where only_row = 1; end;
