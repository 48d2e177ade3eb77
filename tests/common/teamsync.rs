//! Running the real teamsync binary against a scratch store and config.

// Test harness: a failed step should stop the test with its message.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::samba::SambaDc;
use super::slapd::Slapd;

/// A scratch folder with a config pointing at a DC and a store of its own.
pub struct Teamsync {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Teamsync {
    /// A config for `dc` over LDAPS, bound as the domain's Administrator.
    pub fn new(dc: &SambaDc) -> Teamsync {
        Teamsync::with_directory(dc, &dc.ldaps_url(), dc.ca_file(), "")
    }

    /// A config with the given URL and CA file, and extra YAML appended
    /// (top-level keys such as a `sync:` section).
    pub fn with_directory(dc: &SambaDc, url: &str, ca_file: &Path, extra: &str) -> Teamsync {
        let directory = format!(
            "directory:\n  url: {url}\n  base_dn: {base}\n  bind:\n    dn: {bind}\n    password_file: {password}\n  \
             tls:\n    ca_file: {ca}\n  timeouts:\n    connect: 5s\n    operation: 20s\n",
            base = dc.base_dn(),
            bind = dc.admin_bind_dn(),
            password = dc.admin_password_file().display(),
            ca = ca_file.display(),
        );
        Teamsync::with_yaml(&directory, extra)
    }

    /// A config for a slapd (directory.kind: ldap), with `ldap_extra` lines
    /// added under `directory.ldap:` and `extra` top-level YAML appended.
    pub fn for_slapd(slapd: &Slapd, ldap_extra: &str, extra: &str) -> Teamsync {
        let directory = format!(
            "directory:\n  kind: ldap\n  url: {url}\n  base_dn: {base}\n  bind:\n    dn: {bind}\n    \
             password_file: {password}\n  tls:\n    ca_file: {ca}\n  timeouts:\n    connect: 5s\n    \
             operation: 20s\n  ldap:\n    user_base: {people}\n    group_base: {groups}\n{ldap_extra}",
            url = slapd.ldaps_url(),
            base = slapd.base_dn(),
            bind = slapd.admin_bind_dn(),
            password = slapd.admin_password_file().display(),
            ca = slapd.ca_file().display(),
            people = slapd.people_dn(),
            groups = slapd.groups_dn(),
        );
        Teamsync::with_yaml(&directory, extra)
    }

    /// A config with the given `directory:` section and extra top-level YAML.
    pub fn with_yaml(directory: &str, extra: &str) -> Teamsync {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("accounts.db");
        let config = dir.path().join("config.yaml");
        let yaml = format!("store:\n  path: {}\n{directory}{extra}", store.display());
        std::fs::write(&config, yaml).expect("write config");
        Teamsync { dir, config, store }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_teamsync"));
        command
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .env_remove("TEAMSYNC_CONFIG")
            .stdin(Stdio::null());
        command
    }

    /// Runs `teamsync --config CONFIG ARGS...`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run teamsync")
            .into()
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn teamsync");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait teamsync").into()
    }

    /// `--sync-now --json`, expecting the given exit code; returns the report.
    #[track_caller]
    pub fn sync(&self, expected_code: i32) -> serde_json::Value {
        let run = self.run(&["--sync-now", "--json"]);
        run.code(expected_code);
        run.json()
    }

    /// (account, source) pairs of a team, sorted.
    pub fn members(&self, team: &str) -> Vec<(String, String)> {
        let run = self.run(&["team", "members", team, "--json"]);
        run.ok();
        let mut members: Vec<(String, String)> = run
            .json()
            .as_array()
            .expect("members array")
            .iter()
            .map(|m| {
                (
                    m["account"].as_str().expect("account").to_owned(),
                    m["source"].as_str().expect("source").to_owned(),
                )
            })
            .collect();
        members.sort();
        members
    }

    /// The store's bytes, after checking no write-ahead log was left behind.
    pub fn store_bytes(&self) -> Vec<u8> {
        let mut wal = self.store.clone().into_os_string();
        wal.push("-wal");
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_len, 0, "a non-empty WAL was left behind");
        std::fs::read(&self.store).expect("read store")
    }
}

/// Shorthands for the setup every test repeats.
impl Teamsync {
    pub fn account(&self, name: &str) {
        self.run(&["account", "create", name]).ok();
    }

    pub fn login(&self, account: &str, identity: &str) {
        self.run(&["login", "add", account, identity]).ok();
    }

    pub fn team(&self, name: &str) {
        self.run(&["team", "create", name]).ok();
    }

    pub fn link(&self, team: &str, group: &str) {
        self.run(&["team", "link", team, group]).ok();
    }
}

/// `(account, team, action)` of every change in a sync report, sorted.
pub fn changes(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut changes: Vec<(String, String, String)> = report["changes"]
        .as_array()
        .expect("changes array")
        .iter()
        .map(|c| {
            (
                c["account"].as_str().expect("account").to_owned(),
                c["team"].as_str().expect("team").to_owned(),
                c["action"].as_str().expect("action").to_owned(),
            )
        })
        .collect();
    changes.sort();
    changes
}

pub fn change(account: &str, team: &str, action: &str) -> (String, String, String) {
    (account.to_owned(), team.to_owned(), action.to_owned())
}
