-- Append-only includes TRUNCATE: a row trigger does not fire on TRUNCATE,
-- so every append-only table also refuses it at statement level, and the
-- tables updated in place but never emptied (institutions, their chain
-- heads, enrollments, accounts, refunds, the record chain tips) refuse
-- DELETE and TRUNCATE. A refund's terms (enrollment, amount, payee, reason,
-- requester, dates) and an enrollment's contract are fixed once written.
create trigger entries_no_truncate before truncate on entries
    for each statement execute function forbid_change();
create trigger postings_no_truncate before truncate on postings
    for each statement execute function forbid_change();
create trigger bank_statements_no_truncate before truncate on bank_statements
    for each statement execute function forbid_change();
create trigger bank_lines_no_truncate before truncate on bank_lines
    for each statement execute function forbid_change();
create trigger alert_events_no_truncate before truncate on alert_events
    for each statement execute function forbid_change();
create trigger recon_decisions_no_truncate before truncate on recon_decisions
    for each statement execute function forbid_change();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function forbid_change();
create trigger idempotent_answers_no_truncate before truncate on idempotent_answers
    for each statement execute function forbid_change();
create trigger refund_events_no_truncate before truncate on refund_events
    for each statement execute function forbid_change();
create trigger institution_payees_no_truncate before truncate on institution_payees
    for each statement execute function forbid_change();
create trigger institution_events_no_truncate before truncate on institution_events
    for each statement execute function forbid_change();
create trigger recon_days_no_truncate before truncate on recon_days
    for each statement execute function forbid_change();
create trigger record_links_no_truncate before truncate on record_links
    for each statement execute function forbid_change();
create trigger audit_links_no_truncate before truncate on audit_links
    for each statement execute function forbid_change();
create trigger institutions_no_delete before delete on institutions
    for each row execute function forbid_change();
create trigger institutions_no_truncate before truncate on institutions
    for each statement execute function forbid_change();
create trigger chain_heads_no_delete before delete on chain_heads
    for each row execute function forbid_change();
create trigger chain_heads_no_truncate before truncate on chain_heads
    for each statement execute function forbid_change();
create trigger enrollments_no_delete before delete on enrollments
    for each row execute function forbid_change();
create trigger enrollments_no_truncate before truncate on enrollments
    for each statement execute function forbid_change();
create trigger accounts_no_delete before delete on accounts
    for each row execute function forbid_change();
create trigger accounts_no_truncate before truncate on accounts
    for each statement execute function forbid_change();
create trigger refunds_no_delete before delete on refunds
    for each row execute function forbid_change();
create trigger refunds_no_truncate before truncate on refunds
    for each statement execute function forbid_change();
create trigger record_heads_no_truncate before truncate on record_heads
    for each statement execute function forbid_change();
create trigger audit_head_no_truncate before truncate on audit_head
    for each statement execute function forbid_change();

create function forbid_terms_change() returns trigger language plpgsql as $$
begin
    raise exception '% keeps the terms it was written with: UPDATE of them refused', tg_table_name;
end $$;
create trigger refunds_terms_fixed
    before update of institution_id, refund_id, enrollment_id, amount_minor, payee_name, payee_account,
        payee_bank, reason, requested_by, requested_on, answer_by on refunds
    for each row execute function forbid_terms_change();
create trigger enrollments_terms_fixed
    before update of institution_id, enrollment_id, student_ref, hours_bought, bonus_hours, price_minor,
        currency, course_start, course_end, created_at on enrollments
    for each row execute function forbid_terms_change();
