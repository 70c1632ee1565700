//! ledger-core: the escrow ledger's domain (pure) and its store (PostgreSQL
//! and SQLite through sqlx). See ARCHITECTURE.md for the map.

pub mod domain;
pub mod store;

pub use domain::accounts::{AccountCode, AccountType, Side, Totals};
pub use domain::entry::{Command, Entry, EntryKind, Phase, Posting, RefundSource, Request};
pub use domain::error::LedgerError;
pub use domain::ids::{ClientId, EnrollmentId, InstitutionId, JurisdictionCode, RefundId};
pub use domain::money::{Amount, Currency};
pub use domain::policy::{Cap, CapAction, RulePack, RuleParams};
pub use domain::registry::{
    Category, Enrollment, Institution, InstitutionStatus, Jurisdiction, SupervisionMode,
};

pub use store::{Store, StoreError};
