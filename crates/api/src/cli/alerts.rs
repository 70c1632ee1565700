//! `escrow-ledger alert …`: list alerts and act on them (acknowledge,
//! request rectification with a due date, resolve), each with who and why.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Subcommand, ValueEnum};
use ledger_core::domain::alerts::{AlertAction, AlertStatus};
use ledger_core::{InstitutionId, Store};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    Acknowledge,
    Rectify,
    Resolve,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Alerts, of one institution or all, optionally of one status.
    List {
        /// The institution's id (e.g. INS-410922-001).
        #[arg(long)]
        institution: Option<String>,
        /// open, acknowledged, rectification_requested or resolved
        #[arg(long)]
        status: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Act on an alert; the step is kept in its trail.
    Act {
        /// The institution's id (e.g. INS-410922-001).
        #[arg(long)]
        institution: String,
        /// The alert's key, as `alert list` shows it.
        #[arg(long)]
        key: String,
        /// What to do: acknowledge, rectify (ask for rectification by --due) or resolve.
        #[arg(long, value_enum)]
        action: ActionArg,
        /// The rectification deadline, YYYY-MM-DD (with --action rectify).
        #[arg(long, value_parser = crate::cli::parse_day)]
        due: Option<NaiveDate>,
        /// Who acts: recorded in the alert's trail.
        #[arg(long)]
        actor: String,
        /// Why, recorded in the alert's trail.
        #[arg(long)]
        comment: Option<String>,
    },
}

pub async fn run(store: &Store, command: AlertCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertCommand::List {
            institution,
            status,
            json,
        } => {
            let institution = institution.map(InstitutionId::parse).transpose()?;
            let status = status.as_deref().map(AlertStatus::parse).transpose()?;
            let alerts = store.alerts(institution.as_ref(), status).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "alerts": alerts }))?
                );
            } else {
                for a in &alerts {
                    println!(
                        "{} {} [{} {}] seen {}..{}: {}",
                        a.institution,
                        a.key,
                        a.severity,
                        a.status.code(),
                        a.first_seen_on,
                        a.last_seen_on,
                        a.summary
                    );
                }
                println!("{} alerts", alerts.len());
            }
        }
        AlertCommand::Act {
            institution,
            key,
            action,
            due,
            actor,
            comment,
        } => {
            let action = match (action, due) {
                (ActionArg::Acknowledge, _) => AlertAction::Acknowledge,
                (ActionArg::Rectify, Some(due)) => AlertAction::RequestRectification { due },
                (ActionArg::Rectify, None) => {
                    anyhow::bail!("[missing_field] --action rectify needs --due")
                }
                (ActionArg::Resolve, _) => AlertAction::Resolve,
            };
            let id = InstitutionId::parse(institution)?;
            let a = crate::app::alerts::act(store, &id, &key, &action, &actor, comment.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
            println!("{} {} is now {}", a.institution, a.key, a.status.code());
        }
    }
    Ok(ExitCode::SUCCESS)
}
