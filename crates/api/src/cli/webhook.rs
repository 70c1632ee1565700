//! `escrow-ledger webhook list|deliveries|replay`: the signed outbound
//! webhooks at the server: subscriptions, a subscription's delivery log,
//! and a replay (the next webhook pass sends the delivery again, under the
//! same event id).

use std::process::ExitCode;

use clap::Subcommand;
use ledger_core::Store;

use crate::app::webhooks;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Every subscription: id, scope, events, URL (never the secret).
    List,
    /// A subscription's delivery log: each event, its state and attempts.
    Deliveries {
        /// The subscription id (WH-…).
        subscription: String,
    },
    /// Make a delivery due again now, whatever became of it.
    Replay {
        /// The subscription id (WH-…).
        subscription: String,
        /// The event id (as in the delivery log and X-Escrow-Event-Id).
        event: String,
        /// Who asks (kept in the delivery log).
        #[arg(long, default_value = "command line")]
        by: String,
    },
}

pub async fn run(store: &Store, what: WebhookCommand) -> anyhow::Result<ExitCode> {
    match what {
        WebhookCommand::List => {
            for s in webhooks::subscriptions(store).await? {
                let events: Vec<&str> = s.events.iter().map(|e| e.code()).collect();
                println!(
                    "{}  {} {}  {}  {}",
                    s.id,
                    s.scope.kind(),
                    s.scope.id(),
                    events.join(","),
                    s.url
                );
            }
        }
        WebhookCommand::Deliveries { subscription } => {
            let s = webhooks::subscription(store, &subscription).await?;
            for (d, log) in webhooks::deliveries(store, &s).await? {
                println!(
                    "{}  {}  {} attempt(s)  next {}",
                    d.event_id,
                    d.state.code(),
                    d.attempts,
                    d.next_attempt_at.to_rfc3339()
                );
                for a in log {
                    let what = match (&a.replayed_by, a.status, &a.error) {
                        (Some(by), _, _) => format!("replay asked by {by}"),
                        (None, Some(status), _) => format!("answered {status}"),
                        (None, None, Some(e)) => e.clone(),
                        (None, None, None) => "no answer".to_string(),
                    };
                    println!("    #{} {}  {what}", a.attempt, a.at.to_rfc3339());
                }
            }
        }
        WebhookCommand::Replay {
            subscription,
            event,
            by,
        } => {
            let s = webhooks::subscription(store, &subscription).await?;
            webhooks::replay(store, &s, &event, &by).await?;
            println!("{event} to {subscription}: due now (the next webhook pass sends it)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
