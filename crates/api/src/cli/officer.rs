//! `escrow-ledger officer add|reset-password`: console accounts, made by an
//! admin at the server. The password is read from standard input (its
//! first line) or from a file, never from the command line, where other
//! users of the machine could read it.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ledger_core::{JurisdictionCode, Store};

use crate::access::{Role, Scope};
use crate::app::officers::{self, NewOfficer};

#[derive(Debug, Subcommand)]
pub enum OfficerCommand {
    /// Create a console account: an officer of a jurisdiction (a city
    /// covers its counties), or with --admin an admin of everything.
    Add {
        /// What the officer types to sign in (letters, digits, . _ - @).
        login: String,
        /// The officer's name, shown in the console and kept with each act.
        #[arg(long)]
        name: String,
        /// The jurisdiction the officer oversees.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        jurisdiction: Option<String>,
        /// An admin account (sees every jurisdiction).
        #[arg(long)]
        admin: bool,
        /// Read the password from this file (its first line) instead of
        /// standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a new password for an account (the old one stops working).
    ResetPassword {
        /// The account's sign-in name (as given to `officer add`).
        login: String,
        /// Read the password from this file (its first line) instead of
        /// standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// The first line of the file, or of standard input, without its line end.
fn read_password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    let mut line = String::new();
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password file {}", path.display()))?;
            line = text.lines().next().unwrap_or("").to_string();
        }
        None => {
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
        }
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(store: &Store, command: OfficerCommand) -> anyhow::Result<ExitCode> {
    match command {
        OfficerCommand::Add {
            login,
            name,
            jurisdiction,
            admin,
            password_file,
        } => {
            let (role, scope) = match (admin, jurisdiction) {
                (true, _) => (Role::Admin, Scope::All),
                (false, Some(j)) => (
                    Role::Officer,
                    Scope::Jurisdiction(JurisdictionCode::parse(&j)?),
                ),
                (false, None) => anyhow::bail!("give --jurisdiction CODE or --admin"),
            };
            let password = read_password(password_file.as_ref())?;
            let officer = officers::add(
                store,
                NewOfficer {
                    login,
                    name,
                    role,
                    scope,
                },
                &password,
            )
            .await?;
            println!(
                "officer account {} ({}, {}{}) created; sign in at / with its password",
                officer.login,
                officer.name,
                officer.role.as_str(),
                officer
                    .scope
                    .id()
                    .map(|id| format!(" of {id}"))
                    .unwrap_or_default()
            );
        }
        OfficerCommand::ResetPassword {
            login,
            password_file,
        } => {
            let password = read_password(password_file.as_ref())?;
            officers::reset_password(store, &login, &password).await?;
            println!("the password of {login} is set; the old one no longer signs in");
        }
    }
    Ok(ExitCode::SUCCESS)
}
