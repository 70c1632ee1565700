-- Every kept answer has its key's claim: answers kept before claims
-- existed (0014) get one, its lease long run out. A request whose key is
-- claimed afresh then cannot have an answer kept already, so the service
-- looks for a kept answer only when the key was claimed before (one round
-- trip less for nearly every request).
insert into idempotent_claims (token_id, idem_key, request_hash, accepted_at, lease_until)
select token_id, idem_key, request_hash, created_at, created_at
from idempotent_answers
where true
on conflict (token_id, idem_key) do nothing;
