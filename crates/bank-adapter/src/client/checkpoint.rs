//! Where a pull got to, per account: the bank's cursor and the ids already
//! delivered. Saved after every page so a re-run fetches nothing twice and a
//! crash loses nothing; the file implementation replaces the file atomically.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::error::ClientError;

/// How many delivered ids to remember per account. Re-deliveries happen near
/// the tail of a feed (a re-polled last page, a bank replaying a page), so a
/// bounded window keeps the file small without weakening the guarantee in
/// practice; ingestion is idempotent per statement as the last line of defence.
pub const SEEN_IDS_KEPT: usize = 10_000;

const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckpointState {
    pub version: u32,
    /// The bank this state belongs to; a client refuses another bank's state.
    pub bank_id: Option<String>,
    pub accounts: BTreeMap<String, AccountCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountCursor {
    /// The bank's opaque cursor for the next request; `None`: from the start.
    pub after: Option<String>,
    /// Ids already delivered, oldest first, at most [`SEEN_IDS_KEPT`].
    pub seen: VecDeque<String>,
}

impl AccountCursor {
    pub fn seen_set(&self) -> HashSet<&str> {
        self.seen.iter().map(String::as_str).collect()
    }

    pub(crate) fn remember(&mut self, id: String) {
        self.seen.push_back(id);
        while self.seen.len() > SEEN_IDS_KEPT {
            self.seen.pop_front();
        }
    }
}

/// Durable progress of a pull. `save` must not return before the state
/// would survive a crash.
pub trait Checkpoint {
    fn load(&mut self) -> Result<CheckpointState, ClientError>;
    fn save(&mut self, state: &CheckpointState) -> Result<(), ClientError>;
}

/// In memory: for tests and one-shot runs that need no durability.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoint {
    pub state: CheckpointState,
}

impl Checkpoint for MemoryCheckpoint {
    fn load(&mut self) -> Result<CheckpointState, ClientError> {
        Ok(self.state.clone())
    }

    fn save(&mut self, state: &CheckpointState) -> Result<(), ClientError> {
        self.state = state.clone();
        Ok(())
    }
}

/// A JSON file, replaced atomically (write a temporary file, fsync, rename)
/// so a crash leaves either the old or the new state, never half of one.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoint { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn at(&self) -> String {
        self.path.display().to_string()
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".tmp");
        self.path.with_file_name(name)
    }
}

impl Checkpoint for FileCheckpoint {
    fn load(&mut self) -> Result<CheckpointState, ClientError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            // No file yet: a first run starts from the beginning of the feed.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CheckpointState::default())
            }
            Err(error) => {
                return Err(ClientError::checkpoint(
                    self.at(),
                    format!("cannot read: {error}"),
                ))
            }
        };
        // A corrupt file is an error, not a fresh start: starting over would
        // re-deliver the bank's whole history.
        let state: CheckpointState = serde_json::from_slice(&bytes).map_err(|error| {
            ClientError::checkpoint(self.at(), format!("not a checkpoint file: {error}"))
        })?;
        if state.version != STATE_VERSION {
            return Err(ClientError::checkpoint(
                self.at(),
                format!(
                    "version {} is not the supported version {STATE_VERSION}",
                    state.version
                ),
            ));
        }
        Ok(state)
    }

    fn save(&mut self, state: &CheckpointState) -> Result<(), ClientError> {
        let mut state = state.clone();
        state.version = STATE_VERSION;
        let bytes = serde_json::to_vec_pretty(&state).map_err(|error| {
            ClientError::checkpoint(self.at(), format!("cannot serialize: {error}"))
        })?;
        let temp = self.temp_path();
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)?;
            // Make the rename itself durable; not every platform lets a
            // directory be opened, and the data is already safe in that case.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(dir) = fs::File::open(dir) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        };
        write()
            .map_err(|error| ClientError::checkpoint(self.at(), format!("cannot write: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_loads_as_an_empty_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut checkpoint = FileCheckpoint::new(dir.path().join("bank.json"));
        assert_eq!(checkpoint.load().ok(), Some(CheckpointState::default()));
    }

    #[test]
    fn a_saved_state_loads_back_identically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank.json");
        let mut checkpoint = FileCheckpoint::new(&path);
        let mut state = CheckpointState {
            version: STATE_VERSION,
            bank_id: Some("icbc-hz".into()),
            ..CheckpointState::default()
        };
        let cursor = state.accounts.entry("6222001".into()).or_default();
        cursor.after = Some("o4".into());
        cursor.remember("stmt-1".into());
        checkpoint.save(&state).expect("save");
        assert_eq!(checkpoint.load().ok(), Some(state));
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("bank.json")]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_rather_than_a_fresh_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank.json");
        fs::write(&path, b"{\"version\":1,\"accou").expect("write");
        let error = FileCheckpoint::new(&path).load().expect_err("corrupt");
        assert_eq!(error.code(), "checkpoint_failed");
        assert!(error.to_string().contains("bank.json"), "{error}");
    }

    #[test]
    fn only_the_most_recent_ids_are_remembered() {
        let mut cursor = AccountCursor::default();
        for n in 0..SEEN_IDS_KEPT + 5 {
            cursor.remember(format!("id-{n}"));
        }
        assert_eq!(cursor.seen.len(), SEEN_IDS_KEPT);
        assert_eq!(cursor.seen.front().map(String::as_str), Some("id-5"));
    }
}
