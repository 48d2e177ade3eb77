//! The YAML config: read into raw structs (unknown keys refused), then
//! checked once into a typed [`Config`]. Every error names the key and line.
//!
//! Defaults live beside their fields in the raw structs; `config.example.yaml`
//! documents every key and a unit test parses it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use zeroize::Zeroizing;

use crate::model::DirectoryKind;

/// Where the config is read from when neither `--config` nor
/// `TEAMSYNC_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/teamsync/config.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}, line {line}: {key}: {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        line: u64,
        problem: String,
    },
    #[error("config file {path}: {key}: {problem}")]
    Missing {
        path: PathBuf,
        key: &'static str,
        problem: &'static str,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub store: StoreConfig,
    pub directory: DirectoryConfig,
    pub sync: SyncConfig,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://`: upgraded with StartTLS before anything else is sent.
    StartTls,
    /// `ldap://` with `tls.plaintext: true`: nothing is encrypted.
    Plaintext,
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// `None`: told by the rootDSE when connecting.
    pub kind: Option<DirectoryKind>,
    /// The URL as configured, for ldap3 and for messages.
    pub url: String,
    pub host: String,
    pub transport: Transport,
    pub base_dn: String,
    pub netbios_domain: Option<String>,
    pub bind: BindConfig,
    pub tls: TlsConfig,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    /// Everything a pass asks the directory, from connect to the last read.
    pub pass_timeout: Duration,
    pub page_size: u32,
    /// How to read a generic LDAP directory (kind `ldap`).
    pub ldap: LdapSettings,
    /// How to find Active Directory group memberships.
    pub ad_strategy: AdStrategy,
}

/// Two ways to learn an AD account's groups; both give Windows' answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdStrategy {
    /// tokenGroups for few linked logins, the group dump for many.
    Auto,
    /// One tokenGroups read per account (several in flight): cheap when
    /// few accounts are linked.
    TokenGroups,
    /// One paged dump of accounts and groups, expanded in memory: cheap
    /// when many are linked, and needs no right to read tokenGroups.
    GroupDump,
}

impl AdStrategy {
    /// From this many linked logins on, `Auto` dumps the groups: past it the
    /// per-account reads cost more round trips than the dump's pages.
    pub const DUMP_FROM_LOGINS: usize = 200;

    pub fn for_logins(self, logins: usize) -> AdStrategy {
        match self {
            AdStrategy::Auto if logins >= Self::DUMP_FROM_LOGINS => AdStrategy::GroupDump,
            AdStrategy::Auto => AdStrategy::TokenGroups,
            chosen => chosen,
        }
    }
}

/// Where accounts and groups live in a generic LDAP directory, and what
/// they look like. Defaults suit OpenLDAP with inetOrgPerson and groupOfNames.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub user_base: String,
    pub user_filter: String,
    /// The attribute a login names: `uid` by default.
    pub login_attribute: String,
    pub group_base: String,
    pub group_filter: String,
    /// Also count posixGroup `memberUid` values (login attribute values).
    pub posix_groups: bool,
    /// Take each account's direct groups from its memberOf attribute (the
    /// memberof overlay) instead of from the groups' member lists.
    pub use_memberof: bool,
    /// Accounts matching this filter are locked or disabled: no groups.
    pub disabled_filter: String,
}

#[derive(Debug, Clone)]
pub struct BindConfig {
    /// The bind DN (simple bind), or for humans only (GSSAPI).
    pub dn: String,
    pub method: BindMethod,
    /// Accept a password file that group or others may read.
    pub allow_readable_password_file: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMethod {
    /// A DN and a password.
    Simple(PasswordSource),
    /// SASL GSSAPI (Kerberos): no password crosses the network.
    Gssapi(Kerberos),
}

/// Where the Kerberos credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kerberos {
    /// A client keytab; without one, the existing credential cache
    /// (KRB5CCNAME or the default) is used.
    pub keytab: Option<PathBuf>,
    /// A krb5.conf other than the system's.
    pub krb5_config: Option<PathBuf>,
    /// The LDAP server's host name in its service principal
    /// (`ldap/HOST`); the URL's host by default.
    pub service_host: String,
}

/// What `directory()` has checked before the rest of the section.
struct DirectoryParts {
    kind: Option<DirectoryKind>,
    url: String,
    host: String,
    transport: Transport,
    base_dn: String,
    netbios_domain: Option<String>,
    bind: BindConfig,
    ldap: LdapSettings,
}

/// Where the bind password is read from, at bind time, never earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
    /// A systemd credential (`LoadCredential=NAME:...`), read from
    /// `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub interval: Duration,
    /// Up to this much random delay is added to each interval, so that
    /// several servers do not query the DCs in step.
    pub jitter: Duration,
    /// The first retry after a failed pass; it doubles up to `interval`.
    pub retry_initial: Duration,
    /// No successful pass for this long: an error every pass, and "stale"
    /// in status and metrics. Memberships are never purged for it.
    pub stale_after: Duration,
    /// How long `--sync-now` waits for a running pass before exiting 75.
    pub lock_wait: Duration,
    /// A full pass at least this often, even when the directory's change
    /// position says nothing changed.
    pub full_every: Duration,
    pub max_removals: usize,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Where to serve Prometheus metrics; `None`: not served.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub level: String,
    pub format: LogFormat,
}

/// A password held in memory: redacted when printed, wiped when dropped.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the bind password file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the bind password file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error(
        "the bind password file {path} can be read by group or others (mode {mode:o}): run chmod 600 on it, or set directory.bind.allow_readable_password_file: true"
    )]
    Readable { path: PathBuf, mode: u32 },
    #[error("environment variable {name} (directory.bind.password_env) is not set or empty")]
    Env { name: String },
    #[error(
        "directory.bind.password_credential needs $CREDENTIALS_DIRECTORY: run under a systemd unit with LoadCredential={name}:..., or use password_file"
    )]
    NoCredentials { name: String },
}

impl PasswordSource {
    /// Reads the password, refusing a file that group or others may read
    /// unless `allow_readable`. Errors name where it was looked for, never
    /// what it is.
    pub fn read_checked(&self, allow_readable: bool) -> Result<Secret, SecretError> {
        if let PasswordSource::File(path) = self
            && !allow_readable
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(SecretError::Readable {
                    path: path.clone(),
                    mode: mode & 0o7777,
                });
            }
        }
        self.read()
    }

    /// Reads the password. Errors name where it was looked for, never what it is.
    pub fn read(&self) -> Result<Secret, SecretError> {
        match self {
            PasswordSource::Credential(name) => {
                let directory = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .map(PathBuf::from)
                    .filter(|dir| dir.is_absolute())
                    .ok_or_else(|| SecretError::NoCredentials { name: name.clone() })?;
                PasswordSource::File(directory.join(name)).read()
            }
            PasswordSource::File(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                    SecretError::File {
                        path: path.clone(),
                        source,
                    }
                })?);
                // Files written by `echo` end in a newline that is not part of the password.
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
                if trimmed.is_empty() {
                    return Err(SecretError::EmptyFile { path: path.clone() });
                }
                Ok(Secret::new(trimmed.to_owned()))
            }
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
                _ => Err(SecretError::Env { name: name.clone() }),
            },
        }
    }
}

// ---- raw structs: what the YAML may say, with defaults beside fields ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: RawStore,
    directory: RawDirectory,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    logging: RawLogging,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Spanned<String>,
    /// How long a write waits for another writer's lock.
    #[serde(default)]
    busy_timeout: Option<Spanned<String>>,
}
const DEFAULT_BUSY_TIMEOUT: &str = "5s";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    #[serde(default)]
    kind: Option<Spanned<String>>,
    url: Spanned<String>,
    base_dn: Spanned<String>,
    #[serde(default)]
    netbios_domain: Option<Spanned<String>>,
    bind: Spanned<RawBind>,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    page_size: Option<Spanned<u32>>,
    #[serde(default)]
    ldap: RawLdap,
    #[serde(default)]
    ad_strategy: Option<Spanned<String>>,
}
const DEFAULT_PAGE_SIZE: u32 = 1000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    #[serde(default)]
    user_base: Option<Spanned<String>>,
    #[serde(default)]
    user_filter: Option<Spanned<String>>,
    #[serde(default)]
    login_attribute: Option<Spanned<String>>,
    #[serde(default)]
    group_base: Option<Spanned<String>>,
    #[serde(default)]
    group_filter: Option<Spanned<String>>,
    #[serde(default)]
    posix_groups: bool,
    #[serde(default)]
    use_memberof: bool,
    #[serde(default)]
    disabled_filter: Option<Spanned<String>>,
}
const DEFAULT_USER_FILTER: &str = "(objectClass=person)";
const DEFAULT_LOGIN_ATTRIBUTE: &str = "uid";
const DEFAULT_GROUP_FILTER: &str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";
const DEFAULT_POSIX_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))";
const DEFAULT_DISABLED_FILTER: &str = "(pwdAccountLockedTime=*)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    dn: Option<Spanned<String>>,
    #[serde(default)]
    keytab: Option<Spanned<String>>,
    #[serde(default)]
    krb5_config: Option<Spanned<String>>,
    #[serde(default)]
    service_host: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_credential: Option<Spanned<String>>,
    /// Permit a simple bind over a connection without TLS.
    #[serde(default)]
    allow_plaintext_password: bool,
    #[serde(default)]
    allow_readable_password_file: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    insecure_skip_verify: bool,
    /// With `ldap://`: skip StartTLS and talk in plain text.
    #[serde(default)]
    plaintext: Option<Spanned<bool>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    connect: Option<Spanned<String>>,
    #[serde(default)]
    operation: Option<Spanned<String>>,
    #[serde(default)]
    pass: Option<Spanned<String>>,
}
const DEFAULT_CONNECT_TIMEOUT: &str = "10s";
const DEFAULT_OPERATION_TIMEOUT: &str = "60s";
const DEFAULT_PASS_TIMEOUT: &str = "30m";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    #[serde(default)]
    retry_initial: Option<Spanned<String>>,
    #[serde(default)]
    stale_after: Option<Spanned<String>>,
    #[serde(default)]
    lock_wait: Option<Spanned<String>>,
    #[serde(default)]
    full_every: Option<Spanned<String>>,
    #[serde(default)]
    max_removals: Option<usize>,
}
const DEFAULT_INTERVAL: &str = "15m";
const DEFAULT_JITTER: &str = "30s";
const DEFAULT_RETRY_INITIAL: &str = "30s";
const DEFAULT_STALE_AFTER: &str = "24h";
const DEFAULT_LOCK_WAIT: &str = "30s";
const DEFAULT_FULL_EVERY: &str = "24h";
const DEFAULT_MAX_REMOVALS: usize = 50;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    level: Option<Spanned<String>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
}
const DEFAULT_LOG_LEVEL: &str = "info";

// ---- loading and validation ----

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` only labels messages and resolves nothing.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|err| {
                let key = err.path().to_string();
                let inner = err.into_inner();
                <serde_saphyr::Error as serde::de::Error>::custom(if key == "." {
                    inner.to_string()
                } else {
                    format!("{key}: {inner}")
                })
            })
        })
        .map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        Checker { path }.check(raw)
    }
}

struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid<T>(
        &self,
        key: &'static str,
        at: &Spanned<T>,
        problem: impl Into<String>,
    ) -> ConfigError {
        self.invalid_at(key, at.referenced.line(), problem)
    }

    fn invalid_at(&self, key: &'static str, line: u64, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key,
            line,
            problem: problem.into(),
        }
    }

    fn duration(
        &self,
        key: &'static str,
        value: &Option<Spanned<String>>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let parsed = self.duration_or_zero(key, value, default)?;
        if parsed.is_zero() {
            // Only a configured value can be zero; name it.
            if let Some(value) = value {
                return Err(self.invalid(key, value, "must be longer than zero"));
            }
        }
        Ok(parsed)
    }

    fn duration_or_zero(
        &self,
        key: &'static str,
        value: &Option<Spanned<String>>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            // Defaults are constants above; a test proves they parse.
            return Ok(humantime::parse_duration(default).unwrap_or(Duration::from_secs(60)));
        };
        let parsed = humantime::parse_duration(value.value.trim()).map_err(|err| {
            self.invalid(
                key,
                value,
                format!(
                    "`{}` is not a duration ({err}); write e.g. 30s, 15m, 1h",
                    value.value
                ),
            )
        })?;
        Ok(parsed)
    }

    /// One of a few spellings, or `None` when the key is left out.
    fn choice<T: Copy>(
        &self,
        key: &'static str,
        value: &Option<Spanned<String>>,
        what: &str,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let text = value.value.trim();
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, chosen)) => Ok(Some(*chosen)),
            None => {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                let listed = match names.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                Err(self.invalid(key, value, format!("`{text}` is not {what}: use {listed}")))
            }
        }
    }

    fn non_empty(&self, key: &'static str, value: &Spanned<String>) -> Result<String, ConfigError> {
        let trimmed = value.value.trim();
        if trimmed.is_empty() {
            return Err(self.invalid(key, value, "must not be empty"));
        }
        Ok(trimmed.to_owned())
    }

    fn check(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let store = StoreConfig {
            path: PathBuf::from(self.non_empty("store.path", &raw.store.path)?),
            busy_timeout: self.duration(
                "store.busy_timeout",
                &raw.store.busy_timeout,
                DEFAULT_BUSY_TIMEOUT,
            )?,
        };
        let directory = self.directory(raw.directory)?;
        let sync = SyncConfig {
            interval: self.duration("sync.interval", &raw.sync.interval, DEFAULT_INTERVAL)?,
            jitter: self.duration_or_zero("sync.jitter", &raw.sync.jitter, DEFAULT_JITTER)?,
            retry_initial: self.duration(
                "sync.retry_initial",
                &raw.sync.retry_initial,
                DEFAULT_RETRY_INITIAL,
            )?,
            stale_after: self.duration(
                "sync.stale_after",
                &raw.sync.stale_after,
                DEFAULT_STALE_AFTER,
            )?,
            lock_wait: self.duration("sync.lock_wait", &raw.sync.lock_wait, DEFAULT_LOCK_WAIT)?,
            full_every: self.duration(
                "sync.full_every",
                &raw.sync.full_every,
                DEFAULT_FULL_EVERY,
            )?,
            max_removals: raw.sync.max_removals.unwrap_or(DEFAULT_MAX_REMOVALS),
        };
        let metrics = MetricsConfig {
            listen: match &raw.metrics.listen {
                None => None,
                Some(listen) => Some(listen.value.trim().parse().map_err(|_| {
                    self.invalid(
                        "metrics.listen",
                        listen,
                        format!(
                            "`{}` is not an address and port such as 127.0.0.1:9464",
                            listen.value
                        ),
                    )
                })?),
            },
        };
        let format = self
            .choice(
                "logging.format",
                &raw.logging.format,
                "a log format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?
            .unwrap_or(LogFormat::Text);
        let level = match &raw.logging.level {
            Some(level) => {
                let text = self.non_empty("logging.level", level)?;
                if tracing_subscriber::EnvFilter::try_new(&text).is_err() {
                    return Err(self.invalid(
                        "logging.level",
                        level,
                        format!("`{text}` is not a level: use error, warn, info, debug or trace"),
                    ));
                }
                text
            }
            None => DEFAULT_LOG_LEVEL.to_owned(),
        };
        Ok(Config {
            path: self.path.to_owned(),
            store,
            directory,
            sync,
            metrics,
            logging: LoggingConfig { level, format },
        })
    }

    /// A filter must at least be parenthesised; the server checks the rest.
    fn filter(
        &self,
        key: &'static str,
        value: &Option<Spanned<String>>,
        default: &str,
    ) -> Result<String, ConfigError> {
        let Some(value) = value else {
            return Ok(default.to_owned());
        };
        let text = self.non_empty(key, value)?;
        let balanced = text.chars().try_fold(0i32, |depth, c| match c {
            '(' => Some(depth + 1),
            ')' if depth > 0 => Some(depth - 1),
            ')' => None,
            _ => Some(depth),
        });
        if !text.starts_with('(') || balanced != Some(0) {
            return Err(self.invalid(
                key,
                value,
                format!("`{text}` is not an LDAP filter: write e.g. (objectClass=person)"),
            ));
        }
        Ok(text)
    }

    fn ldap_settings(&self, raw: &RawLdap, base_dn: &str) -> Result<LdapSettings, ConfigError> {
        let base = |key: &'static str, value: &Option<Spanned<String>>| match value {
            Some(value) => self.non_empty(key, value),
            None => Ok(base_dn.to_owned()),
        };
        let login_attribute = match &raw.login_attribute {
            Some(value) => {
                let name = self.non_empty("directory.ldap.login_attribute", value)?;
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(self.invalid(
                        "directory.ldap.login_attribute",
                        value,
                        format!("`{name}` is not an attribute name"),
                    ));
                }
                name
            }
            None => DEFAULT_LOGIN_ATTRIBUTE.to_owned(),
        };
        let group_default = if raw.posix_groups {
            DEFAULT_POSIX_GROUP_FILTER
        } else {
            DEFAULT_GROUP_FILTER
        };
        Ok(LdapSettings {
            user_base: base("directory.ldap.user_base", &raw.user_base)?,
            user_filter: self.filter(
                "directory.ldap.user_filter",
                &raw.user_filter,
                DEFAULT_USER_FILTER,
            )?,
            login_attribute,
            group_base: base("directory.ldap.group_base", &raw.group_base)?,
            group_filter: self.filter(
                "directory.ldap.group_filter",
                &raw.group_filter,
                group_default,
            )?,
            posix_groups: raw.posix_groups,
            use_memberof: raw.use_memberof,
            disabled_filter: self.filter(
                "directory.ldap.disabled_filter",
                &raw.disabled_filter,
                DEFAULT_DISABLED_FILTER,
            )?,
        })
    }

    fn directory(&self, raw: RawDirectory) -> Result<DirectoryConfig, ConfigError> {
        let url_text = self.non_empty("directory.url", &raw.url)?;
        let url = url::Url::parse(&url_text).map_err(|err| {
            self.invalid(
                "directory.url",
                &raw.url,
                format!(
                    "`{url_text}` is not a URL ({err}); write e.g. ldaps://dc1.corp.example.com"
                ),
            )
        })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(self.invalid("directory.url", &raw.url, "names no host"));
        }
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(self.invalid(
                "directory.url",
                &raw.url,
                "must be scheme://host[:port] only; put the base DN in directory.base_dn",
            ));
        }
        let plaintext = raw.tls.plaintext.as_ref().is_some_and(|p| p.value);
        // Where to point when the plaintext opt-in is at fault.
        let plaintext_line = raw
            .tls
            .plaintext
            .as_ref()
            .map_or(raw.url.referenced.line(), |p| p.referenced.line());
        let transport = match (url.scheme(), plaintext) {
            ("ldaps", false) => Transport::Ldaps,
            ("ldap", false) => Transport::StartTls,
            ("ldap", true) => Transport::Plaintext,
            ("ldaps", true) => {
                return Err(self.invalid_at(
                    "directory.tls.plaintext",
                    plaintext_line,
                    "cannot be true with an ldaps:// URL",
                ));
            }
            (scheme, _) => {
                return Err(self.invalid(
                    "directory.url",
                    &raw.url,
                    format!(
                        "scheme `{scheme}` is not supported: use ldaps:// or ldap:// (StartTLS)"
                    ),
                ));
            }
        };

        // Left out: told by the rootDSE.
        let kind = self.choice(
            "directory.kind",
            &raw.kind,
            "a directory kind (or leave it out to detect it)",
            &[
                ("active_directory", DirectoryKind::ActiveDirectory),
                ("ldap", DirectoryKind::Ldap),
            ],
        )?;
        let base_dn = self.non_empty("directory.base_dn", &raw.base_dn)?;
        if !base_dn.contains('=') {
            return Err(self.invalid(
                "directory.base_dn",
                &raw.base_dn,
                format!("`{base_dn}` is not a DN; write e.g. DC=corp,DC=example,DC=com"),
            ));
        }

        let netbios_domain = match &raw.netbios_domain {
            Some(name) => {
                let text = self.non_empty("directory.netbios_domain", name)?;
                if text.chars().count() > 15 || text.contains(['\\', '.', ' ']) {
                    return Err(self.invalid(
                        "directory.netbios_domain",
                        name,
                        "a NetBIOS domain name is at most 15 characters, without dots, spaces or backslashes",
                    ));
                }
                Some(text)
            }
            None => None,
        };

        let bind_at = &raw.bind;
        let bind = &raw.bind.value;
        let gssapi = self
            .choice(
                "directory.bind.method",
                &bind.method,
                "a bind method",
                &[("simple", false), ("gssapi", true)],
            )?
            .unwrap_or(false);
        let dn = match &bind.dn {
            Some(dn) => self.non_empty("directory.bind.dn", dn)?,
            None if gssapi => String::new(),
            None => {
                return Err(self.invalid(
                    "directory.bind",
                    bind_at,
                    "needs dn, the account to bind as (or method: gssapi)",
                ));
            }
        };
        let path = |key: &'static str, value: &Option<Spanned<String>>| {
            value
                .as_ref()
                .map(|v| self.non_empty(key, v).map(PathBuf::from))
                .transpose()
        };
        let method = if gssapi {
            if bind.password_file.is_some()
                || bind.password_env.is_some()
                || bind.password_credential.is_some()
            {
                return Err(self.invalid(
                    "directory.bind",
                    bind_at,
                    "method gssapi takes no password: use keytab, or an existing credential cache",
                ));
            }
            let kerberos = Kerberos {
                keytab: path("directory.bind.keytab", &bind.keytab)?,
                krb5_config: path("directory.bind.krb5_config", &bind.krb5_config)?,
                service_host: match &bind.service_host {
                    Some(host) => self.non_empty("directory.bind.service_host", host)?,
                    None => host.clone(),
                },
            };
            BindMethod::Gssapi(kerberos)
        } else {
            if let Some(key) = [
                ("directory.bind.keytab", &bind.keytab),
                ("directory.bind.krb5_config", &bind.krb5_config),
                ("directory.bind.service_host", &bind.service_host),
            ]
            .into_iter()
            .find_map(|(key, value)| value.as_ref().map(|v| (key, v)))
            {
                return Err(self.invalid(key.0, key.1, "only applies to method: gssapi"));
            }
            let password = match (
                &bind.password_file,
                &bind.password_env,
                &bind.password_credential,
            ) {
                (None, None, Some(credential)) => {
                    let name = self.non_empty("directory.bind.password_credential", credential)?;
                    if name.contains('/') || name == "." || name == ".." {
                        return Err(self.invalid(
                            "directory.bind.password_credential",
                            credential,
                            format!(
                                "`{name}` is not a credential name (as in LoadCredential=NAME:PATH)"
                            ),
                        ));
                    }
                    PasswordSource::Credential(name)
                }
                (Some(file), None, None) => PasswordSource::File(PathBuf::from(
                    self.non_empty("directory.bind.password_file", file)?,
                )),
                (None, Some(env), None) => {
                    let name = self.non_empty("directory.bind.password_env", env)?;
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(self.invalid(
                            "directory.bind.password_env",
                            env,
                            format!("`{name}` is not an environment variable name"),
                        ));
                    }
                    PasswordSource::Env(name)
                }
                (None, None, None) => {
                    return Err(self.invalid(
                    "directory.bind",
                    bind_at,
                    "needs password_file, password_env or password_credential for the bind password",
                ));
                }
                _ => {
                    return Err(self.invalid(
                        "directory.bind",
                        bind_at,
                        "set only one of password_file, password_env and password_credential",
                    ));
                }
            };
            if transport == Transport::Plaintext && !bind.allow_plaintext_password {
                return Err(self.invalid_at(
                "directory.tls.plaintext",
                plaintext_line,
                "a simple bind would send the password in clear text; use ldaps:// or StartTLS, \
                 or set directory.bind.allow_plaintext_password: true to accept that risk",
            ));
            }

            BindMethod::Simple(password)
        };
        let ldap = self.ldap_settings(&raw.ldap, &base_dn)?;
        self.finish_directory(
            &raw,
            DirectoryParts {
                kind,
                url: url_text,
                host,
                transport,
                base_dn,
                netbios_domain,
                bind: BindConfig {
                    dn,
                    method,
                    allow_readable_password_file: bind.allow_readable_password_file,
                },
                ldap,
            },
        )
    }

    /// The rest of the directory section, checked once the bind is known.
    fn finish_directory(
        &self,
        raw: &RawDirectory,
        parts: DirectoryParts,
    ) -> Result<DirectoryConfig, ConfigError> {
        let ca_file = match &raw.tls.ca_file {
            Some(file) => Some(PathBuf::from(
                self.non_empty("directory.tls.ca_file", file)?,
            )),
            None => None,
        };

        let page_size = match &raw.page_size {
            Some(size) if size.value == 0 => {
                return Err(self.invalid("directory.page_size", size, "must be at least 1"));
            }
            Some(size) => size.value,
            None => DEFAULT_PAGE_SIZE,
        };

        let ad_strategy = self
            .choice(
                "directory.ad_strategy",
                &raw.ad_strategy,
                "a strategy",
                &[
                    ("auto", AdStrategy::Auto),
                    ("token_groups", AdStrategy::TokenGroups),
                    ("group_dump", AdStrategy::GroupDump),
                ],
            )?
            .unwrap_or(AdStrategy::Auto);
        let DirectoryParts {
            kind,
            url,
            host,
            transport,
            base_dn,
            netbios_domain,
            bind,
            ldap,
        } = parts;
        Ok(DirectoryConfig {
            ad_strategy,
            ldap,
            kind,
            url,
            host,
            transport,
            base_dn,
            netbios_domain,
            bind,
            tls: TlsConfig {
                ca_file,
                insecure_skip_verify: raw.tls.insecure_skip_verify,
            },
            connect_timeout: self.duration(
                "directory.timeouts.connect",
                &raw.timeouts.connect,
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            operation_timeout: self.duration(
                "directory.timeouts.operation",
                &raw.timeouts.operation,
                DEFAULT_OPERATION_TIMEOUT,
            )?,
            pass_timeout: self.duration(
                "directory.timeouts.pass",
                &raw.timeouts.pass,
                DEFAULT_PASS_TIMEOUT,
            )?,
            page_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
store:
  path: /tmp/accounts.db
directory:
  url: ldaps://dc1.corp.example.com
  base_dn: DC=corp,DC=example,DC=com
  bind:
    dn: svc-teamsync@corp.example.com
    password_file: /etc/teamsync/bind-password
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config.example.yaml");
        let config = parse(text).unwrap();
        assert_eq!(config.directory.transport, Transport::Ldaps);
        assert_eq!(config.sync.max_removals, 50);
        assert_eq!(config.sync.interval, Duration::from_secs(15 * 60));
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.store.busy_timeout, Duration::from_secs(5));
        assert_eq!(config.directory.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.directory.operation_timeout, Duration::from_secs(60));
        assert_eq!(config.directory.page_size, 1000);
        assert_eq!(config.sync.interval, Duration::from_secs(900));
        assert_eq!(config.sync.max_removals, 50);
        assert_eq!(config.logging.level, "info");
        assert!(!config.directory.tls.insecure_skip_verify);
        assert_eq!(
            config.directory.bind.method,
            BindMethod::Simple(PasswordSource::File("/etc/teamsync/bind-password".into()))
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = MINIMAL.replace("    dn:", "    passwrd: x\n    dn:");
        let message = error(&text);
        assert!(message.contains("passwrd"), "{message}");
        assert!(message.contains("line 7"), "{message}");
    }

    #[test]
    fn a_wrong_type_is_named_with_key_and_line() {
        let text = format!("{MINIMAL}sync:\n  max_removals: lots\n");
        let message = error(&text);
        assert!(message.contains("sync.max_removals"), "{message}");
        assert!(message.contains("line 10"), "{message}");
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let text = MINIMAL.replace("  base_dn: DC=corp,DC=example,DC=com\n", "");
        let message = error(&text);
        assert!(message.contains("base_dn"), "{message}");
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn bad_values_name_key_line_and_fix() {
        let message = error(&MINIMAL.replace("ldaps://dc1", "http://dc1"));
        assert!(message.contains("directory.url"), "{message}");
        assert!(message.contains("line 4"), "{message}");
        assert!(message.contains("ldaps://"), "{message}");

        let message = error(&format!("{MINIMAL}sync:\n  interval: soon\n"));
        assert!(message.contains("sync.interval"), "{message}");
        assert!(message.contains("line 10"), "{message}");
    }

    #[test]
    fn ldap_urls_mean_starttls_and_plaintext_needs_two_opt_ins() {
        let starttls = parse(&MINIMAL.replace("ldaps://", "ldap://")).unwrap();
        assert_eq!(starttls.directory.transport, Transport::StartTls);

        let plaintext = MINIMAL.replace("ldaps://", "ldap://") + "  tls:\n    plaintext: true\n";
        let message = error(&plaintext);
        assert!(message.contains("allow_plaintext_password"), "{message}");

        let opted_in = plaintext.replace(
            "    dn: svc",
            "    allow_plaintext_password: true\n    dn: svc",
        );
        assert_eq!(
            parse(&opted_in).unwrap().directory.transport,
            Transport::Plaintext
        );
    }

    #[test]
    fn exactly_one_password_source_is_required() {
        let none = MINIMAL.replace("    password_file: /etc/teamsync/bind-password\n", "");
        assert!(error(&none).contains("password_file"));
        let both = format!("{MINIMAL}    password_env: BIND_PW\n");
        assert!(error(&both).contains("only one of"));
    }

    #[test]
    fn a_systemd_credential_is_read_from_the_credentials_directory() {
        let text = MINIMAL.replace(
            "    password_file: /etc/teamsync/bind-password\n",
            "    password_credential: bind-password\n",
        );
        let config = parse(&text).unwrap();
        let BindMethod::Simple(source) = &config.directory.bind.method else {
            panic!("not a simple bind: {:?}", config.directory.bind.method);
        };
        assert_eq!(source, &PasswordSource::Credential("bind-password".into()));
        assert!(
            error(&text.replace("bind-password\n", "../etc/shadow\n")).contains("credential name")
        );
        // Without $CREDENTIALS_DIRECTORY the error says what to do.
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            let message = source.read().unwrap_err().to_string();
            assert!(message.contains("LoadCredential"), "{message}");
        }
    }

    #[test]
    fn a_gssapi_bind_takes_a_keytab_and_no_password() {
        let text = MINIMAL.replace(
            "    dn: svc-teamsync@corp.example.com\n    password_file: /etc/teamsync/bind-password\n",
            "    method: gssapi\n    keytab: /etc/teamsync/teamsync.keytab\n",
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.directory.bind.method,
            BindMethod::Gssapi(Kerberos {
                keytab: Some("/etc/teamsync/teamsync.keytab".into()),
                krb5_config: None,
                service_host: "dc1.corp.example.com".into(),
            })
        );
        let with_password = format!("{text}    password_env: PW\n");
        assert!(error(&with_password).contains("takes no password"));
        let keytab_on_simple = format!("{MINIMAL}    keytab: /x\n");
        assert!(error(&keytab_on_simple).contains("only applies to method: gssapi"));
        assert!(error(&text.replace("gssapi", "ntlm")).contains("simple or gssapi"));
    }

    #[test]
    fn a_password_file_others_can_read_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = PasswordSource::File(path.clone());
        let message = source.read_checked(false).unwrap_err().to_string();
        assert!(
            message.contains("chmod 600") && message.contains("644"),
            "{message}"
        );
        assert!(!message.contains("s3cret"));
        assert_eq!(source.read_checked(true).unwrap().expose(), "s3cret-value");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.read_checked(false).unwrap().expose(), "s3cret-value");
    }

    #[test]
    fn defaults_are_valid_durations() {
        for text in [
            DEFAULT_BUSY_TIMEOUT,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_OPERATION_TIMEOUT,
            DEFAULT_PASS_TIMEOUT,
            DEFAULT_INTERVAL,
            DEFAULT_JITTER,
            DEFAULT_RETRY_INITIAL,
            DEFAULT_STALE_AFTER,
            DEFAULT_LOCK_WAIT,
            DEFAULT_FULL_EVERY,
        ] {
            assert!(humantime::parse_duration(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn secrets_are_redacted_and_file_newlines_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let secret = PasswordSource::File(path.clone()).read().unwrap();
        assert_eq!(secret.expose(), "s3cret-value");
        assert!(!format!("{secret:?}").contains("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            PasswordSource::File(path).read(),
            Err(SecretError::EmptyFile { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_text_loads_without_panic(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_value_of_a_known_key_loads_without_panic(value in "\\PC{0,40}") {
            let text = MINIMAL.replace("ldaps://dc1.corp.example.com", &value);
            let _ = parse(&text);
        }
    }
}
