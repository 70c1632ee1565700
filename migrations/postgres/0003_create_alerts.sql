-- Alerts: what the risk engine found, with a lifecycle (open, acknowledged,
-- rectification requested, resolved) and an append-only trail of who did
-- what when. The same condition on a later run updates its open alert.

create table alerts (
    institution_id    text not null references institutions (institution_id),
    alert_key         text not null,
    kind              text not null,
    severity          text not null check (severity in ('yellow', 'red')),
    summary           text not null,
    evidence          text not null,
    rule_pack         text not null,
    status            text not null check (status in ('open', 'acknowledged', 'rectification_requested', 'resolved')),
    rectification_due date,
    first_seen_on     date not null,
    last_seen_on      date not null,
    updated_at        timestamptz not null,
    primary key (institution_id, alert_key)
);

create table alert_events (
    institution_id text not null,
    alert_key      text not null,
    seq            integer not null,
    at             timestamptz not null,
    actor          text not null,
    action         text not null check (action in ('raised', 'updated', 'reopened', 'acknowledged', 'rectification_requested', 'resolved')),
    comment        text,
    primary key (institution_id, alert_key, seq),
    foreign key (institution_id, alert_key) references alerts (institution_id, alert_key)
);

create trigger alert_events_append_only before update or delete on alert_events
    for each row execute function forbid_change();
