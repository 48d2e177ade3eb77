//! The environment the Kerberos library reads its settings from.
//!
//! MIT krb5 takes a client keytab (KRB5_CLIENT_KTNAME), a credential cache
//! (KRB5CCNAME) and its configuration (KRB5_CONFIG) from the environment
//! only. Changing the environment of a running process is unsafe once
//! threads exist, so when the config asks for settings the environment does
//! not hold, teamsync starts itself again with them, before anything else.

use std::ffi::OsString;
use std::path::Path;

use crate::config::Kerberos;

/// Set in the restarted process, so it never restarts twice.
const MARKER: &str = "TEAMSYNC_KRB5_ENV";

/// What the environment must hold for these Kerberos settings.
pub fn wanted(kerberos: &Kerberos) -> Vec<(&'static str, OsString)> {
    let mut wanted = Vec::new();
    if let Some(keytab) = &kerberos.keytab {
        let mut name = OsString::from("FILE:");
        name.push(absolute(keytab));
        wanted.push(("KRB5_CLIENT_KTNAME", name));
        // Tickets got from the keytab stay in this process's memory.
        wanted.push(("KRB5CCNAME", OsString::from("MEMORY:teamsync")));
    }
    if let Some(config) = &kerberos.krb5_config {
        wanted.push(("KRB5_CONFIG", absolute(config).into_os_string()));
    }
    wanted
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The variables still to set, or nothing when the environment is right
/// (or this process was already restarted for it).
pub fn missing(kerberos: &Kerberos) -> Vec<(&'static str, OsString)> {
    if std::env::var_os(MARKER).is_some() {
        return Vec::new();
    }
    wanted(kerberos)
        .into_iter()
        .filter(|(name, value)| std::env::var_os(name).as_ref() != Some(value))
        .collect()
}

/// Replaces this process with itself, same arguments, plus `vars`.
/// Returns only when that fails.
pub fn restart_with(vars: Vec<(&'static str, OsString)>) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(err) => return err,
    };
    std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .envs(vars)
        .env(MARKER, "1")
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keytab_brings_a_private_cache_and_paths_are_absolute() {
        let kerberos = Kerberos {
            keytab: Some("/etc/teamsync/teamsync.keytab".into()),
            krb5_config: Some("/etc/teamsync/krb5.conf".into()),
            service_host: "dc1.corp.example.com".into(),
        };
        let vars = wanted(&kerberos);
        assert_eq!(
            vars,
            vec![
                (
                    "KRB5_CLIENT_KTNAME",
                    OsString::from("FILE:/etc/teamsync/teamsync.keytab")
                ),
                ("KRB5CCNAME", OsString::from("MEMORY:teamsync")),
                ("KRB5_CONFIG", OsString::from("/etc/teamsync/krb5.conf")),
            ]
        );
        let cache_only = Kerberos {
            keytab: None,
            krb5_config: None,
            service_host: "dc1".into(),
        };
        assert!(wanted(&cache_only).is_empty());
    }
}
