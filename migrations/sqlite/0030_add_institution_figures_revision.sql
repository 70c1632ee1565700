-- Each kept figures row counts its changes, so a reader can tell whether
-- anything in a jurisdiction changed since it last looked (the sum of the
-- revisions of its rows and their number) with one indexed aggregate, and
-- answer the overview from a cache when nothing did (`app::oversight`).
-- Every statement that writes a row adds one.

alter table institution_figures add column revision bigint not null default 0;
