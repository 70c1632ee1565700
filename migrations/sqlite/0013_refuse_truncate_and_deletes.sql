-- SQLite has no TRUNCATE (a DELETE without WHERE fires the row triggers the
-- append-only tables already have). The tables updated in place but never
-- emptied refuse DELETE, and a refund's and an enrollment's terms are fixed
-- once written (see the PostgreSQL file of the same number).
create trigger institutions_no_delete before delete on institutions
begin select raise(abort, 'institutions is append-only: DELETE refused'); end;
create trigger chain_heads_no_delete before delete on chain_heads
begin select raise(abort, 'chain_heads is append-only: DELETE refused'); end;
create trigger enrollments_no_delete before delete on enrollments
begin select raise(abort, 'enrollments is append-only: DELETE refused'); end;
create trigger accounts_no_delete before delete on accounts
begin select raise(abort, 'accounts is append-only: DELETE refused'); end;
create trigger refunds_no_delete before delete on refunds
begin select raise(abort, 'refunds is append-only: DELETE refused'); end;
create trigger refunds_terms_fixed
    before update of institution_id, refund_id, enrollment_id, amount_minor, payee_name, payee_account,
        payee_bank, reason, requested_by, requested_on, answer_by on refunds
begin select raise(abort, 'refunds keeps the terms it was written with: UPDATE of them refused'); end;
create trigger enrollments_terms_fixed
    before update of institution_id, enrollment_id, student_ref, hours_bought, bonus_hours, price_minor,
        currency, course_start, course_end, created_at on enrollments
begin select raise(abort, 'enrollments keeps the terms it was written with: UPDATE of them refused'); end;
