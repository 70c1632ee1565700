//! A running `escrow-ledger serve` process for one test: started from a
//! prepared command, its address read from what it prints, stopped with
//! SIGTERM (bounded) or SIGKILL, and killed when dropped so that a failing
//! test leaves no server behind. Shared by the end-to-end test crates.

use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Served {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// The lines it printed up to and including `listening on …`.
    pub printed: Vec<String>,
    /// `http` or `https` (when it terminates TLS itself).
    #[allow(dead_code)] // read by the deploy tests only
    pub scheme: String,
}

/// Starts `command` (an `escrow-ledger … serve …`) and waits until it says
/// where it listens; its log (stderr) is discarded.
pub fn start(mut command: Command) -> Served {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let (scheme, addr) = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            panic!("serve exited before it listened: {printed:?}");
        };
        let line = line.unwrap();
        printed.push(line.clone());
        if let Some((scheme, addr)) = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_once("://"))
        {
            break (scheme.to_string(), addr.to_string());
        }
    };
    Served {
        child,
        addr,
        printed,
        scheme,
    }
}

impl Served {
    /// Sends it a signal by name (`HUP`, `TERM`, …).
    #[allow(dead_code)] // used by the deploy tests only
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// SIGTERM, then the exit status (bounded: a hung shutdown fails).
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not stop within 10 s of SIGTERM");
    }

    /// SIGKILL: the process dies mid-work, as in a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
