//! Connecting as libpq does: settings from a `postgres://` URL or key=value string
//! (`--database-url` / `DATABASE_URL`), a service file and the PG* variables; TLS with
//! every sslmode; several hosts tried in turn; and a description of the target that never
//! contains the password.
//!
//! - `params`: the settings as text, assembled in libpq's order of precedence.
//! - `settings`: typed and checked, with libpq's defaults; what is unsupported is refused.
//! - `sslmode`: sslmode and the certificate files, with libpq's defaults and rules.
//! - `tls`: rustls configured per sslmode.
//! - `service`: connection service files.
//! - `pgpass`: the password file.

mod params;
mod pgpass;
mod service;
mod settings;
mod sslmode;
mod tls;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use tokio_postgres::config::{SslMode as PgSslMode, SslNegotiation};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
pub use params::Env;
use settings::{Host, SessionAttrs, Settings, Target};
use sslmode::SslMode;

/// The longest application_name the server keeps (NAMEDATALEN - 1 bytes).
const NAME_MAX: usize = 63;

/// Where to connect, resolved once per command.
#[derive(Clone)]
pub struct ConnectOptions {
    settings: Settings,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ConnectOptions {
    /// `url` (a `postgres://` URL or a libpq key=value string) when given, completed as
    /// libpq completes it: from the service it names (or PGSERVICE), then the PG*
    /// variables, then libpq's defaults.
    pub fn resolve(url: Option<&str>) -> Result<Self> {
        let env: Env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::resolve_in(url, &env)
    }

    /// As [`ConnectOptions::resolve`], with `env` standing for the process environment.
    pub fn resolve_in(url: Option<&str>, env: &Env) -> Result<Self> {
        let params = params::assemble(url, env)?;
        let settings = settings::build(&params, env)?;
        let tls = tls::client_config(&settings.tls)?;
        Ok(ConnectOptions { settings, tls })
    }

    /// `user@host:port/dbname` (hosts separated by commas), never the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self.settings.targets.iter().map(describe_target).collect();
        format!(
            "{}@{}/{}",
            self.settings.user,
            hosts.join(","),
            self.settings.dbname
        )
    }

    /// The sslmode in force (`prefer` unless told otherwise).
    pub fn sslmode(&self) -> &'static str {
        self.settings.tls.mode.name()
    }

    /// Opens a connection whose application_name is `application_name`, followed by the
    /// user's own in parentheses when one is set (so a DBA finds it in
    /// `pg_stat_activity` either way), trying each host in turn, and drives it on a
    /// background task.
    pub async fn connect(&self, application_name: &str) -> Result<Client> {
        let name = session_name(application_name, self.settings.application_name.as_deref());
        let s = &self.settings;
        let mut order: Vec<&Target> = s.targets.iter().collect();
        if s.load_balance {
            shuffle(&mut order);
        }
        let passes = match s.session_attrs {
            SessionAttrs::PreferStandby => vec![SessionAttrs::Standby, SessionAttrs::Any],
            attrs => vec![attrs],
        };
        let mut failures: Vec<String> = Vec::new();
        let mut last = None;
        // Whether every host failed to answer at all (as opposed to refusing us).
        let mut unreachable = true;
        for want in passes {
            for target in &order {
                let place = describe_target(target);
                let limit = s.connect_timeout.unwrap_or(settings::DEFAULT_HANDSHAKE);
                let Ok(attempt) =
                    tokio::time::timeout(limit, self.connect_target(target, &name)).await
                else {
                    failures.push(format!(
                        "{place}: no answer within {}s (connect_timeout)",
                        limit.as_secs()
                    ));
                    continue;
                };
                match attempt {
                    Ok(client) => match session_fits(&client, want).await {
                        Ok(()) => return pin_settings(client).await,
                        Err(why) => {
                            unreachable = false;
                            failures.push(format!("{place}: {why}"));
                        }
                    },
                    Err(source) => {
                        // Rendered as every database error is, with its causes.
                        let err = Error::Db {
                            context: place,
                            source,
                        };
                        unreachable &= err.exit_code() == 4;
                        failures.push(err.to_string());
                        last = Some(err);
                    }
                }
            }
        }
        let context = format!("cannot connect to {}", self.describe());
        match (last, failures.len()) {
            (Some(Error::Db { source, .. }), 1) => Err(Error::Db { context, source }),
            _ if unreachable => Err(Error::Unreachable {
                target: self.describe(),
                failures,
            }),
            _ => Err(Error::invalid(
                format!(
                    "{context}: every host failed:\n    {}",
                    failures.join("\n    ")
                ),
                "check the hosts, ports, sslmode and target_session_attrs",
            )),
        }
    }

    /// One server, with TLS as the sslmode says: `allow` tries without TLS first and
    /// with it when the server refuses; `prefer` the other way round (also when the
    /// handshake fails). Unix sockets never use TLS, as in libpq.
    async fn connect_target(
        &self,
        t: &Target,
        name: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let config = |mode| self.config(t, name, mode);
        let tls = match (&t.host, &self.tls) {
            (Some(Host::Unix(_)), _) | (_, None) => None,
            (_, Some(tls)) => Some(MakeRustlsConnect::new((**tls).clone())),
        };
        let Some(tls) = tls else {
            return open(&config(PgSslMode::Disable), NoTls).await;
        };
        match self.settings.tls.mode {
            SslMode::Allow => match open(&config(PgSslMode::Disable), NoTls).await {
                Err(e) if e.as_db_error().is_some() => open(&config(PgSslMode::Require), tls).await,
                done => done,
            },
            SslMode::Prefer => match open(&config(PgSslMode::Prefer), tls).await {
                // As libpq: a failed handshake, or a server refusing us over TLS.
                Err(e) if is_tls_failure(&e) || e.as_db_error().is_some() => {
                    open(&config(PgSslMode::Disable), NoTls).await
                }
                done => done,
            },
            _ => open(&config(PgSslMode::Require), tls).await,
        }
    }

    fn config(&self, t: &Target, name: &str, mode: PgSslMode) -> Config {
        let s = &self.settings;
        let mut c = Config::new();
        match (&t.host, t.hostaddr) {
            (Some(Host::Tcp(h)), _) => c.host(h),
            (Some(Host::Unix(p)), _) => c.host_path(p),
            // Without a host name, TLS checks the certificate against the address.
            (None, addr) => c.host(addr.map(|a| a.to_string()).unwrap_or_default()),
        };
        if let Some(addr) = t.hostaddr {
            c.hostaddr(addr);
        }
        c.port(t.port)
            .user(&s.user)
            .dbname(&s.dbname)
            .application_name(name);
        if let Some(p) = &t.password {
            c.password(p.as_bytes());
        }
        if let Some(o) = &s.options {
            c.options(o);
        }
        if let Some(d) = s.connect_timeout {
            c.connect_timeout(d);
        }
        if let Some(d) = s.tcp_user_timeout {
            c.tcp_user_timeout(d);
        }
        c.keepalives(s.keepalives)
            .keepalives_idle(s.keepalives_idle);
        if let Some(d) = s.keepalives_interval {
            c.keepalives_interval(d);
        }
        if let Some(n) = s.keepalives_count {
            c.keepalives_retries(n);
        }
        c.channel_binding(s.channel_binding).ssl_mode(mode);
        if s.tls.direct {
            c.ssl_negotiation(SslNegotiation::Direct);
        }
        c
    }
}

async fn open<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notice(n)) => log_notice(&n),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("connection closed: {e}");
                    break;
                }
            }
        }
    });
    Ok(client)
}

/// The server's notices and warnings, at info; the ones the tool's idempotent
/// `DROP ... IF EXISTS` provokes ("... does not exist, skipping") only at debug (-v).
fn log_notice(n: &tokio_postgres::error::DbError) {
    let expected = n.code() == &tokio_postgres::error::SqlState::SUCCESSFUL_COMPLETION
        && n.message().ends_with("does not exist, skipping");
    if expected {
        tracing::debug!("{}: {}", n.severity(), n.message());
    } else {
        tracing::info!("{}: {}", n.severity(), n.message());
    }
}

/// The settings every session of the tool runs with (see `stmt::SESSION_SETTINGS`).
async fn pin_settings(client: Client) -> Result<Client> {
    client
        .batch_execute(crate::stmt::SESSION_SETTINGS)
        .await
        .map_err(|source| Error::Db {
            context: "pinning the session's settings".into(),
            source,
        })?;
    Ok(client)
}

/// Whether the TLS handshake itself failed (as opposed to the server refusing us).
fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if s.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        source = s.source();
    }
    false
}

/// target_session_attrs, checked as libpq checks it once connected.
async fn session_fits(client: &Client, want: SessionAttrs) -> std::result::Result<(), String> {
    let (sql, wanted, otherwise) = match want {
        SessionAttrs::Any | SessionAttrs::PreferStandby => return Ok(()),
        SessionAttrs::ReadWrite => ("SHOW transaction_read_only", "off", "read-only"),
        SessionAttrs::ReadOnly => ("SHOW transaction_read_only", "on", "not read-only"),
        SessionAttrs::Primary => (
            "SELECT pg_catalog.pg_is_in_recovery()::pg_catalog.text",
            "false",
            "a standby",
        ),
        SessionAttrs::Standby => (
            "SELECT pg_catalog.pg_is_in_recovery()::pg_catalog.text",
            "true",
            "not a standby",
        ),
    };
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| e.to_string())?;
    let value: String = row.get(0);
    if value == wanted {
        Ok(())
    } else {
        Err(format!("the server is {otherwise} (target_session_attrs)"))
    }
}

/// hyperswap's name for the session, then the user's application_name in parentheses,
/// shortened so that the whole fits the server's 63 bytes.
pub fn session_name(hyperswap: &str, user: Option<&str>) -> String {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return hyperswap.to_string();
    };
    let room = NAME_MAX.saturating_sub(hyperswap.len() + 3);
    let mut end = room.min(user.len());
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        return hyperswap.to_string();
    }
    format!("{hyperswap} ({})", &user[..end])
}

fn describe_target(t: &Target) -> String {
    let host = match (&t.host, t.hostaddr) {
        (Some(Host::Tcp(h)), _) => h.clone(),
        (Some(Host::Unix(p)), _) => p.display().to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => "?".into(),
    };
    format!("{host}:{}", t.port)
}

/// load_balance_hosts=random: a random order, from the standard library's random keys.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        items.swap(i, (h.finish() % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests;
