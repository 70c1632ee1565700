//! `escrow-ledger backup --to FILE`: a consistent copy of a SQLite database
//! while the service keeps writing (`VACUUM INTO`: one read transaction, so
//! the copy is the database as of one instant), written beside the target
//! and linked into place, so a backup is whole or absent and never
//! overwrites anything. PostgreSQL is backed up with its own tools
//! (`pg_dump`, base backups and WAL archiving), as deploy/README.md says.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub async fn run(database: &crate::config::DatabaseUrl, to: &Path) -> anyhow::Result<()> {
    let url = database.expose();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "backup copies SQLite databases; {database} is PostgreSQL: back it up with \
             `pg_dump --format=custom` for a logical copy, or with base backups and WAL \
             archiving (pg_basebackup, pgBackRest) for point-in-time recovery; \
             deploy/README.md (Backups and restore) has the commands and the restore drill"
        );
    }
    if !url.starts_with("sqlite:") {
        bail!("database URL {database} is not supported: use postgres://… or sqlite://…");
    }
    if to.exists() {
        bail!(
            "{} exists: a backup never overwrites a file; name a new one",
            to.display()
        );
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10));
    let source = options.get_filename().to_path_buf();
    let mut conn = options
        .connect()
        .await
        .with_context(|| format!("cannot open the database {database}"))?;
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = to
        .file_name()
        .context("--to names no file")?
        .to_string_lossy()
        .into_owned();
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let started = chrono::Utc::now();
    sqlx::query("vacuum into ?")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot write the backup into {}", dir.display()))?;
    conn.close().await?;
    let result = finish(&partial, to).await;
    let _ = std::fs::remove_file(&partial);
    let (bytes, version) = result?;
    println!(
        "backed up {} to {} ({bytes} bytes, schema version {version}, integrity ok, as of {})",
        source.display(),
        to.display(),
        started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}

/// Checks the copy, makes it durable, and links it to its name (which
/// fails if the name was taken meanwhile). Its size and schema version.
async fn finish(partial: &Path, to: &Path) -> anyhow::Result<(u64, i64)> {
    let options = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true);
    let mut copy = options.connect().await?;
    let check: String = sqlx::query_scalar("pragma integrity_check")
        .fetch_one(&mut copy)
        .await?;
    if check != "ok" {
        bail!("the copy does not pass SQLite's integrity check: {check}");
    }
    let version: i64 = sqlx::query_scalar("select coalesce(max(version), 0) from _sqlx_migrations")
        .fetch_one(&mut copy)
        .await
        .context("the copy has no migrations table: is this an escrow-ledger database?")?;
    copy.close().await?;
    std::fs::File::open(partial)?.sync_all()?;
    std::fs::hard_link(partial, to).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} exists: a backup never overwrites a file; name a new one",
                to.display()
            )
        } else {
            anyhow::anyhow!("cannot name the backup {}: {e}", to.display())
        }
    })?;
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The new name is durable once its directory is.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok((std::fs::metadata(to)?.len(), version))
}
