//! One LDAP connection: TLS set up from config, a simple bind, and searches
//! that either complete or fail. Every network step has a timeout.
//!
//! A search result is only ever returned whole: a page missing, a result
//! code other than success, a connection cut mid-way all become errors,
//! because "could not read" must never look like "is empty".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ldap3::controls::{Control, ControlType, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{DirectoryError, entry, range};
use crate::config::{BindMethod, DirectoryConfig, Transport};

/// LDAP result codes teamsync tells apart (RFC 4511 4.1.9).
pub mod rc {
    pub const SUCCESS: u32 = 0;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
}

/// How a base-scope read of one entry ended.
pub enum BaseRead {
    Found(SearchEntry),
    /// The entry does not exist (result 32).
    Missing,
    /// The server refused to let us read it (result 50).
    Denied(String),
}

pub struct Connection {
    ldap: Ldap,
    url: String,
    operation_timeout: Duration,
    page_size: i32,
    /// LDAP requests sent on this connection and its siblings (bind and
    /// searches included). Shared and atomic: several searches may run at
    /// once, on this connection or on one opened with [`Connection::open_another`].
    requests: Arc<AtomicU64>,
    /// What it was opened with, to open another one like it.
    config: DirectoryConfig,
}

impl Connection {
    /// Connects (with TLS unless plaintext was explicitly chosen) and binds.
    pub async fn open(config: &DirectoryConfig) -> Result<Connection, DirectoryError> {
        Self::open_counting(config, Arc::new(AtomicU64::new(0))).await
    }

    /// A second connection to the same server, bound the same way, whose
    /// requests count with this one's. For servers that keep one paged
    /// search per connection (OpenLDAP) when two should run at once.
    pub async fn open_another(&self) -> Result<Connection, DirectoryError> {
        Self::open_counting(&self.config, Arc::clone(&self.requests)).await
    }

    async fn open_counting(
        config: &DirectoryConfig,
        requests: Arc<AtomicU64>,
    ) -> Result<Connection, DirectoryError> {
        let settings = tls_settings(config)?;
        let url = config.url.clone();
        let connecting = LdapConnAsync::with_settings(settings, &url);
        // set_conn_timeout covers the TCP connect; this also bounds TLS and StartTLS.
        let (driver, ldap) = tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| DirectoryError::Timeout {
                url: url.clone(),
                during: "connecting".into(),
                after: config.connect_timeout,
            })?
            .map_err(|source| DirectoryError::Connect {
                url: url.clone(),
                source: Box::new(source),
            })?;
        tokio::spawn(async move {
            if let Err(err) = driver.drive().await {
                tracing::debug!(error = %err, "LDAP connection closed with an error");
            }
        });
        let mut connection = Connection {
            ldap,
            url,
            operation_timeout: config.operation_timeout,
            page_size: i32::try_from(config.page_size).unwrap_or(i32::MAX),
            requests,
            config: config.clone(),
        };
        connection.bind(config).await?;
        Ok(connection)
    }

    async fn bind(&mut self, config: &DirectoryConfig) -> Result<(), DirectoryError> {
        let (who, result) = match &config.bind.method {
            BindMethod::Simple(source) => {
                let password = source.read_checked(config.bind.allow_readable_password_file)?;
                let dn = &config.bind.dn;
                self.count_request();
                let result = self
                    .timed(
                        "binding",
                        self.ldap.clone().simple_bind(dn, password.expose()),
                    )
                    .await?;
                (dn.clone(), result)
            }
            BindMethod::Gssapi(kerberos) => {
                // One SASL round trip or more; counted as the bind.
                self.count_request();
                let result = self
                    .timed(
                        "binding with Kerberos (GSSAPI)",
                        self.ldap.clone().sasl_gssapi_bind(&kerberos.service_host),
                    )
                    .await?;
                (format!("GSSAPI to ldap/{}", kerberos.service_host), result)
            }
        };
        if result.rc != rc::SUCCESS {
            return Err(DirectoryError::BindRefused {
                dn: who,
                rc: result.rc,
                message: result.text,
            });
        }
        tracing::debug!(url = %self.url, bind = %who, "bound to the directory");
        Ok(())
    }

    /// Runs one network step under the operation timeout.
    async fn timed<T>(
        &self,
        during: &str,
        step: impl std::future::Future<Output = ldap3::result::Result<T>>,
    ) -> Result<T, DirectoryError> {
        tokio::time::timeout(self.operation_timeout, step)
            .await
            .map_err(|_| DirectoryError::Timeout {
                url: self.url.clone(),
                during: during.to_owned(),
                after: self.operation_timeout,
            })?
            .map_err(|source| DirectoryError::Protocol {
                during: during.to_owned(),
                source: Box::new(source),
            })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one entry by DN.
    pub async fn read(&self, dn: &str, attrs: &[&str]) -> Result<BaseRead, DirectoryError> {
        self.count_request();
        let during = format!("reading {dn}");
        let mut ldap = self.ldap.clone();
        let result = self
            .timed(
                &during,
                ldap.search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec()),
            )
            .await?;
        classify_base_read(during, result)
    }

    /// Reads many entries by DN with up to `concurrency` requests in flight
    /// on this connection; the answers come back in the order asked. Any
    /// failure fails the whole read.
    pub async fn read_many(
        &self,
        dns: &[String],
        attrs: &[&str],
        concurrency: usize,
    ) -> Result<Vec<BaseRead>, DirectoryError> {
        let attrs: Vec<String> = attrs.iter().map(|a| (*a).to_owned()).collect();
        let mut answers: Vec<Option<BaseRead>> = (0..dns.len()).map(|_| None).collect();
        let mut in_flight = tokio::task::JoinSet::new();
        let mut next = 0;
        while next < dns.len() || !in_flight.is_empty() {
            while next < dns.len() && in_flight.len() < concurrency.max(1) {
                let mut ldap = self.ldap.clone();
                let dn = dns[next].clone();
                let attrs = attrs.clone();
                let timeout = self.operation_timeout;
                let index = next;
                in_flight.spawn(async move {
                    let read = ldap.search(&dn, Scope::Base, "(objectClass=*)", attrs);
                    let answer = tokio::time::timeout(timeout, read).await;
                    (index, dn, answer)
                });
                self.count_request();
                next += 1;
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (index, dn, answer) = joined.map_err(|err| DirectoryError::Result {
                during: "reading entries".into(),
                rc: 80,
                text: err.to_string(),
            })?;
            let during = format!("reading {dn}");
            let answer = answer
                .map_err(|_| DirectoryError::Timeout {
                    url: self.url.clone(),
                    during: during.clone(),
                    after: self.operation_timeout,
                })?
                .map_err(|source| DirectoryError::Protocol {
                    during: during.clone(),
                    source: Box::new(source),
                })?;
            answers[index] = Some(classify_base_read(during, answer)?);
        }
        // Every slot was filled: each index was spawned once and joined once.
        Ok(answers.into_iter().flatten().collect())
    }

    /// Every value of a multi-valued attribute of a search entry, asking for
    /// the remaining ranges when the server answered with a range (AD's
    /// MaxValRange). A range that cannot be read fails the whole read.
    pub async fn all_values(
        &self,
        found: &SearchEntry,
        name: &str,
    ) -> Result<Vec<String>, DirectoryError> {
        let mut values = entry::texts(found, name);
        let Some((mut answered, part)) = entry::ranged(found, name)? else {
            return Ok(values);
        };
        let mut asked = 0;
        let mut count = part.len();
        values.extend(part);
        let range_error = |problem: String| DirectoryError::Malformed {
            dn: found.dn.clone(),
            attribute: name.to_owned(),
            problem,
        };
        while let Some(start) =
            range::next_start(asked, answered, count).map_err(|err| range_error(err.to_string()))?
        {
            let request = range::request(name, start);
            let BaseRead::Found(next) = self.read(&found.dn, &[request.as_str()]).await? else {
                return Err(range_error(format!(
                    "values from {start} on could not be read"
                )));
            };
            let Some((range, part)) = entry::ranged(&next, name)? else {
                return Err(range_error(format!(
                    "the server gave no range when asked for values from {start} on"
                )));
            };
            asked = start;
            answered = range;
            count = part.len();
            values.extend(part);
        }
        Ok(values)
    }

    /// Reads the rootDSE, which needs no paging and exists on every server.
    pub async fn root_dse(&self, attrs: &[&str]) -> Result<SearchEntry, DirectoryError> {
        match self.read("", attrs).await? {
            BaseRead::Found(entry) => Ok(entry),
            BaseRead::Missing | BaseRead::Denied(_) => Err(DirectoryError::Result {
                during: "reading the rootDSE".into(),
                rc: rc::NO_SUCH_OBJECT,
                text: "the server returned no rootDSE".into(),
            }),
        }
    }

    /// A subtree or one-level search with the paged-results control, every
    /// page checked. Continuation references are not entries and are dropped.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut entries = Vec::new();
        self.search_each(base, scope, filter, attrs, |entry| entries.push(entry))
            .await?;
        Ok(entries)
    }

    /// [`Connection::search`], handing each entry to `each` as its page
    /// arrives instead of keeping them all: memory stays at one page plus
    /// what `each` keeps. On an error, what `each` saw must be thrown away.
    pub async fn search_each(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        mut each: impl FnMut(SearchEntry),
    ) -> Result<(), DirectoryError> {
        let mut cookie = Vec::new();
        let during = format!("searching {base} for {}", shorten(filter));
        loop {
            self.count_request();
            let mut ldap = self.ldap.clone();
            ldap.with_controls(PagedResults {
                size: self.page_size,
                cookie: std::mem::take(&mut cookie),
            });
            let ldap3::SearchResult(page, outcome) = self
                .timed(&during, ldap.search(base, scope, filter, attrs.to_vec()))
                .await?;
            if outcome.rc != rc::SUCCESS {
                return Err(DirectoryError::Result {
                    during,
                    rc: outcome.rc,
                    text: outcome.text,
                });
            }
            page.into_iter()
                .filter(|entry| !entry.is_ref() && !entry.is_intermediate())
                .map(SearchEntry::construct)
                .for_each(&mut each);
            cookie = outcome
                .ctrls
                .iter()
                .find_map(|Control(kind, raw)| match kind {
                    Some(ControlType::PagedResults) if raw.val.is_some() => {
                        Some(raw.parse::<PagedResults>().cookie)
                    }
                    _ => None,
                })
                .unwrap_or_default();
            if cookie.is_empty() {
                return Ok(());
            }
        }
    }

    /// The identity the server sees us as (RFC 4532 "Who am I?"), when the
    /// server answers that question (Samba does not).
    pub async fn who_am_i(&self) -> Result<Option<String>, DirectoryError> {
        self.count_request();
        let mut ldap = self.ldap.clone();
        let ldap3::result::ExopResult(exop, outcome) = self
            .timed(
                "asking who we are bound as",
                ldap.extended(ldap3::exop::WhoAmI),
            )
            .await?;
        if outcome.rc != rc::SUCCESS || exop.val.is_none() {
            return Ok(None);
        }
        Ok(Some(exop.parse::<ldap3::exop::WhoAmIResp>().authzid))
    }

    pub async fn close(mut self) {
        // Best effort: the server drops the connection on its own otherwise.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ldap.unbind()).await;
    }
}

/// A filter for messages: long batched filters are cut, not dumped whole.
fn shorten(filter: &str) -> String {
    const KEEP: usize = 160;
    match filter.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}... ({} characters)", &filter[..at], filter.len()),
        None => filter.to_owned(),
    }
}

fn classify_base_read(
    during: String,
    result: ldap3::SearchResult,
) -> Result<BaseRead, DirectoryError> {
    let ldap3::SearchResult(entries, outcome) = result;
    match outcome.rc {
        rc::SUCCESS => match entries.into_iter().next() {
            Some(entry) => Ok(BaseRead::Found(SearchEntry::construct(entry))),
            None => Ok(BaseRead::Missing),
        },
        rc::NO_SUCH_OBJECT => Ok(BaseRead::Missing),
        rc::INSUFFICIENT_ACCESS => Ok(BaseRead::Denied(outcome.text)),
        code => Err(DirectoryError::Result {
            during,
            rc: code,
            text: outcome.text,
        }),
    }
}

fn tls_settings(config: &DirectoryConfig) -> Result<LdapConnSettings, DirectoryError> {
    // ldap3's own timeout only covers TCP; teamsync's around the whole
    // connect fires first and names what timed out.
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(config.connect_timeout + Duration::from_secs(1))
        .set_starttls(config.transport == Transport::StartTls);
    if config.transport == Transport::Plaintext {
        return Ok(settings);
    }
    if config.tls.insecure_skip_verify {
        return Ok(settings.set_no_tls_verify(true));
    }
    if let Some(path) = &config.tls.ca_file {
        let mut roots = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|source| DirectoryError::CaFile {
                path: path.clone(),
                problem: source.to_string(),
            })?;
        for cert in certs {
            let cert = cert.map_err(|source| DirectoryError::CaFile {
                path: path.clone(),
                problem: source.to_string(),
            })?;
            roots.add(cert).map_err(|source| DirectoryError::CaFile {
                path: path.clone(),
                problem: source.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(DirectoryError::CaFile {
                path: path.clone(),
                problem: "it holds no PEM certificate".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| DirectoryError::TlsSetup { source })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        settings = settings.set_config(Arc::new(tls));
    }
    Ok(settings)
}
