//! Signed checkpoints at the command line: `attest keygen` (an Ed25519 key
//! pair in two hex files), `attest` (verify, then sign every chain head) and
//! `verify --checkpoint` (check the signature, then that the database still
//! extends every chain the checkpoint names).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ledger_core::domain::checkpoint::{self, Checkpoint};
use ledger_core::store::VerifyReport;
use ledger_core::Store;
use rand::RngCore;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttestArgs {
    #[command(subcommand)]
    pub what: Option<AttestCommand>,
    /// The private key file (64 hex digits, as `attest keygen` writes it).
    #[arg(long, env = "ESCROW_ATTEST_KEY")]
    pub key: Option<PathBuf>,
    /// Where to write the checkpoint (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Make a new Ed25519 key pair: the private key in OUT (mode 0600,
    /// never overwritten), the public key in OUT.pub and on standard output.
    Keygen {
        /// Where to write the private key (0600); the public key goes
        /// beside it with `.pub` added.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = checkpoint::signing_key_from_seed(seed);
    let public = checkpoint::verifying_key_text(&key.verifying_key());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create the private key file {}", out.display()))?;
    writeln!(file, "{}", checkpoint::signing_key_text(&key))?;
    let public_path = public_path(out);
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    println!("{public}");
    eprintln!(
        "private key in {} (keep it off the database host's backups); public key in {}",
        out.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Verifies the database, and only if every chain holds, signs its heads.
pub async fn attest(store: &Store, key: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = checkpoint::parse_signing_key(&read(key, "the private key")?)
        .with_context(|| format!("{}", key.display()))?;
    let report = store.verify().await?;
    if !report.ok() {
        print_failures(&report);
        eprintln!("nothing attested: the database does not verify");
        return Ok(ExitCode::FAILURE);
    }
    let signed = Checkpoint::sign(report.heads.clone(), &key);
    let text = serde_json::to_string_pretty(&signed)? + "\n";
    match out {
        Some(path) => {
            write_atomically(path, &text)?;
            eprintln!(
                "attested {} institutions and the audit log at {} into {}",
                signed.heads.institutions.len(),
                signed.heads.attested_at.to_rfc3339(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(text.as_bytes())?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let path = dir.join(format!(".checkpoint-{}.tmp", hex::encode(suffix)));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok((path, file))
}

/// Reads a checkpoint and checks its signature with the public key.
pub fn load_checkpoint(file: &Path, public_key: &Path) -> anyhow::Result<Checkpoint> {
    let key = checkpoint::parse_verifying_key(&read(public_key, "the public key")?)
        .with_context(|| format!("{}", public_key.display()))?;
    let cp: Checkpoint = serde_json::from_str(&read(file, "the checkpoint")?)
        .with_context(|| format!("checkpoint {} is not one", file.display()))?;
    if let Err(e) = cp.verify_signature(&key) {
        bail!("checkpoint {} refused: {e}", file.display());
    }
    Ok(cp)
}

pub fn print_failures(report: &VerifyReport) {
    for f in &report.failures {
        let tag = if f.checkpoint {
            "CHECKPOINT"
        } else {
            "MISMATCH"
        };
        match (&f.institution, f.chain.as_str()) {
            (Some(id), "entries") if !f.checkpoint => println!(
                "{tag} institution {id} entry {} ({}): {}",
                f.seq.map_or("-".into(), |s| s.to_string()),
                f.client_id.as_deref().unwrap_or("-"),
                f.reason
            ),
            (Some(id), "institutions") => println!("{tag} institution {id}: {}", f.reason),
            (Some(id), chain) => println!("{tag} institution {id} {chain}: {}", f.reason),
            (None, _) => println!("{tag} audit log: {}", f.reason),
        }
    }
}

/// `verify`, with or without a checkpoint.
pub async fn verify(
    store: &Store,
    checkpoint: Option<(&Path, &Path)>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cp = match checkpoint {
        Some((file, key)) => match load_checkpoint(file, key) {
            Ok(cp) => Some(cp),
            Err(e) => {
                eprintln!("{e:#}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let result = store.verify_against(cp.as_ref().map(|c| &c.heads)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else if result.ok() {
        print!(
            "verified: {} institutions, {} entries, {} record links, {} audit log entries; \
             every hash chain, running total and counter matches",
            result.institutions, result.entries, result.records, result.audit_entries
        );
        match &cp {
            Some(cp) => println!(
                ", and the database extends the checkpoint of {} (signed by {})",
                cp.heads.attested_at.to_rfc3339(),
                cp.public_key
            ),
            None => println!(),
        }
    } else {
        print_failures(&result);
    }
    Ok(if result.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
