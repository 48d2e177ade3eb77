//! The admin CLI against the store alone: accounts, teams, API keys, bad
//! input and bad config. No directory is contacted by these commands.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

struct Scratch {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch::with_config(|store| {
            format!(
                "store:\n  path: {store}\ndirectory:\n  url: ldaps://dc1.corp.example.com\n  \
                 base_dn: DC=corp,DC=example,DC=com\n  bind:\n    dn: svc@corp.example.com\n    \
                 password_env: UNUSED_BIND_PASSWORD\n"
            )
        })
    }

    fn with_config(yaml: impl Fn(&str) -> String) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("accounts.db");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml(&store.display().to_string())).unwrap();
        Scratch { dir, config }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_teamsync"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        run
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args).stdout).unwrap()
    }
}

#[test]
fn accounts_are_created_listed_shown_disabled_and_deleted() {
    let s = Scratch::new();
    s.ok(&[
        "account",
        "create",
        "deploy-bot",
        "--display-name",
        "Deploy bot",
    ]);
    assert_eq!(s.run(&["account", "create", "DEPLOY-BOT"]).code, 1);
    let list = s.json(&["account", "list", "--json"]);
    assert_eq!(list[0]["name"], "deploy-bot");
    assert_eq!(list[0]["display_name"], "Deploy bot");
    s.ok(&["account", "disable", "deploy-bot"]);
    assert_eq!(
        s.json(&["account", "show", "deploy-bot", "--json"])["disabled"],
        true
    );
    s.ok(&["account", "enable", "deploy-bot"]);
    s.ok(&["account", "delete", "deploy-bot"]);
    let missing = s.run(&["account", "show", "deploy-bot"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("no service account named `deploy-bot`")
    );
}

#[test]
fn malformed_identities_are_refused_with_a_usage_error() {
    let s = Scratch::new();
    s.ok(&["account", "create", "bot"]);
    for bad in ["svc-build", "CORP\\", "S-1-5-21-x", "@corp.example.com"] {
        let run = s.run(&["login", "add", "bot", bad]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("error"), "{}", run.stderr);
    }
    for good in [
        "CORP\\svc-build",
        "svc-build@corp.example.com",
        "S-1-5-21-1-2-3-1105",
    ] {
        s.ok(&["login", "add", "bot", good]);
    }
    let shown = s.json(&["account", "show", "bot", "--json"]);
    assert_eq!(shown["logins"].as_array().unwrap().len(), 3);
}

#[test]
fn manual_members_are_listed_with_their_source() {
    let s = Scratch::new();
    s.ok(&["account", "create", "bot"]);
    s.ok(&["team", "create", "ops"]);
    s.ok(&["team", "add-member", "ops", "bot"]);
    let members = s.json(&["team", "members", "ops", "--json"]);
    assert_eq!(members[0]["account"], "bot");
    assert_eq!(members[0]["source"], "manual");
    s.ok(&["team", "remove-member", "ops", "bot"]);
    assert_eq!(
        s.json(&["team", "members", "ops", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(s.run(&["team", "remove-member", "ops", "bot"]).code, 1);
}

#[test]
fn api_keys_are_shown_once_stored_hashed_and_verified() {
    let s = Scratch::new();
    s.ok(&["account", "create", "bot"]);
    s.ok(&["team", "create", "ops"]);
    s.ok(&["team", "add-member", "ops", "bot"]);
    let key = s
        .ok(&["apikey", "create", "bot", "--purpose", "ci"])
        .stdout
        .trim()
        .to_owned();
    assert!(key.starts_with("API-"), "{key}");
    let body = &key[4..];
    // Uppercase letters and digits carry log2(36) bits each: at least 128 in all.
    assert!(body.len() as f64 * 36f64.log2() >= 128.0, "{key}");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );

    // The key itself is nowhere in the store.
    let store = std::fs::read(s.dir.path().join("accounts.db")).unwrap();
    assert!(!store.windows(key.len()).any(|w| w == key.as_bytes()));

    let verified = s.run_with_stdin(&["apikey", "verify"], &format!("{key}\n"));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(verified.stdout.contains("bot") && verified.stdout.contains("ops"));
    let listed = s.json(&["apikey", "list", "bot", "--json"]);
    assert_eq!(listed[0]["purpose"], "ci");
    assert!(listed[0]["last_used_at"].is_string());
    assert!(!listed.to_string().contains(&key));

    assert_eq!(
        s.run_with_stdin(&["apikey", "verify"], "API-NOTAKEY").code,
        1
    );
    s.ok(&["account", "disable", "bot"]);
    assert_eq!(s.run_with_stdin(&["apikey", "verify"], &key).code, 1);
    s.ok(&["account", "enable", "bot"]);
    let id = listed[0]["id"].to_string();
    s.ok(&["apikey", "revoke", "bot", &id]);
    let revoked = s.run_with_stdin(&["apikey", "verify"], &key);
    assert_eq!(revoked.code, 1);
    assert!(revoked.stdout.contains("revoked"));
}

#[test]
fn deleting_a_team_or_account_removes_its_memberships() {
    let s = Scratch::new();
    s.ok(&["account", "create", "bot"]);
    s.ok(&["team", "create", "ops"]);
    s.ok(&["team", "add-member", "ops", "bot"]);
    s.ok(&["account", "delete", "bot"]);
    assert_eq!(
        s.json(&["team", "members", "ops", "--json"]),
        serde_json::json!([])
    );
    s.ok(&["team", "delete", "ops"]);
    assert_eq!(s.json(&["team", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn a_bad_config_exits_78_naming_key_and_line() {
    let s = Scratch::with_config(|store| {
        format!(
            "store:\n  path: {store}\ndirectory:\n  url: ldaps://dc1\n  base_dn: DC=corp\n  \
             bind:\n    dn: svc\n    password_file: /x\nsync:\n  max_removals: many\n"
        )
    });
    let run = s.run(&["account", "list"]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(run.stderr.contains("sync.max_removals"), "{}", run.stderr);
    assert!(run.stderr.contains("line 10"), "{}", run.stderr);

    let s = Scratch::with_config(|store| format!("store:\n  path: {store}\n  colour: blue\n"));
    let run = s.run(&["account", "list"]);
    assert_eq!(run.code, 78);
    assert!(
        run.stderr.contains("colour") && run.stderr.contains("line 3"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_commands() {
    let s = Scratch::new();
    assert_eq!(s.run(&["--dry-run"]).code, 2);
    assert_eq!(s.run(&["account", "frobnicate"]).code, 2);
    assert_eq!(s.run(&["--sync-now", "account", "list"]).code, 2);
    let help = s.ok(&["--help"]);
    for word in [
        "--sync-now",
        "account",
        "login",
        "team",
        "apikey",
        "check",
        "Exit codes",
    ] {
        assert!(help.stdout.contains(word), "help lacks {word}");
    }
}

#[test]
fn the_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    s.ok(&["account", "create", "bot"]);
    let mode = std::fs::metadata(s.dir.path().join("accounts.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn a_pass_while_another_holds_the_lock_exits_75_naming_the_holder() {
    let s = Scratch::with_config(|store| {
        format!(
            "store:\n  path: {store}\ndirectory:\n  url: ldaps://dc1.corp.example.com\n  \
             base_dn: DC=corp,DC=example,DC=com\n  bind:\n    dn: svc@corp.example.com\n    \
             password_env: UNUSED_BIND_PASSWORD\nsync:\n  lock_wait: 1s\n"
        )
    });
    s.ok(&["account", "list"]);
    let lock_path = s.dir.path().join("accounts.db.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(&lock_path, "4242").unwrap();
    let started = std::time::Instant::now();
    let run = s.run(&["--sync-now"]);
    assert_eq!(run.code, 75, "{}", run.stderr);
    // It waited sync.lock_wait for the holder before giving up.
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert!(
        run.stderr.contains("another pass is running"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("4242"), "{}", run.stderr);
}
