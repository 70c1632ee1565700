-- The daily risk scan reads reconciliation's kept matches instead of
-- re-matching the whole history: for each claimed debit line it asks
-- whether the match claiming it also claims entries of ours (money out we
-- instructed). This index answers that by match, not by a scan of every
-- entry claim of the institution.
create index recon_entry_claims_by_match on recon_entry_claims (institution_id, match_id);
