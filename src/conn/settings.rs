//! The assembled parameters checked and typed, with libpq's defaults; a setting hyperswap
//! cannot honour is refused here, by name, rather than ignored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::ChannelBinding;

use super::params::{nonempty, Env, Params, KEYWORDS};
use super::pgpass;
use super::sslmode::{tls_settings, TlsSettings};
use crate::error::{Error, Result};

/// Where Debian's libpq finds the server's socket when no host is given.
const SOCKET_DIR: &str = "/var/run/postgresql";

/// One server to try: `host` names it (for TLS and the password file), `hostaddr`, when
/// given, is where the connection actually goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub host: Option<Host>,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub password: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Host {
    Tcp(String),
    Unix(PathBuf),
}

/// libpq's target_session_attrs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub targets: Vec<Target>,
    pub user: String,
    pub dbname: String,
    pub options: Option<String>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub keepalives: bool,
    pub keepalives_idle: Duration,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub tcp_user_timeout: Option<Duration>,
    pub channel_binding: ChannelBinding,
    pub session_attrs: SessionAttrs,
    pub load_balance: bool,
    pub tls: TlsSettings,
}

/// A setting with a value hyperswap cannot honour, and why; `None` when it can.
fn unsupported(key: &str, value: &str) -> Option<&'static str> {
    let v = value.to_ascii_lowercase();
    match key {
        "require_auth" => Some("the driver cannot restrict the server's authentication methods"),
        "replication" if !matches!(v.as_str(), "0" | "false" | "off" | "no") => {
            Some("hyperswap needs a normal session, not a replication connection")
        }
        "gssencmode" if v != "disable" && v != "prefer" => {
            Some("GSSAPI encryption is not available; use TLS (sslmode)")
        }
        "krbsrvname" | "gsslib" => Some("GSSAPI/Kerberos authentication is not available"),
        "gssdelegation" if v != "0" => Some("GSSAPI/Kerberos authentication is not available"),
        "sslpassword" => Some("encrypted client keys are not supported: decrypt it (openssl pkey -in KEY -out PLAIN.key) and keep it mode 0600"),
        "sslcrl" | "sslcrldir" => Some("certificate revocation lists are not supported"),
        "sslcertmode" if v == "require" => {
            Some("the TLS library cannot tell whether the server asked for the certificate")
        }
        "sslcompression" if v != "0" => Some("TLS compression is not available (it is unsafe)"),
        "requirepeer" => Some("peer checks on Unix sockets are not supported"),
        "client_encoding" if !matches!(v.as_str(), "utf8" | "utf-8" | "unicode" | "auto") => {
            Some("hyperswap always talks UTF8 with the server")
        }
        _ => None,
    }
}

/// `key` (or its variable) as a user would look for it.
pub(super) fn named(key: &str) -> String {
    match KEYWORDS
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| *v)
    {
        Some(var) => format!("`{key}` (or {var})"),
        None => format!("`{key}`"),
    }
}

pub(super) fn bad_value(key: &str, value: &str, valid: &str) -> Error {
    Error::invalid(
        format!(
            "the connection setting {} has the invalid value `{value}`",
            named(key)
        ),
        format!("use one of: {valid}"),
    )
}

pub(super) fn value<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn refuse_unsupported(params: &Params) -> Result<()> {
    for (key, value) in params {
        if let Some(why) = unsupported(key, value) {
            return Err(Error::invalid(
                format!("the connection setting {} is not supported: {why}", named(key)),
                format!("remove `{key}` from the connection string, the service file or the environment"),
            ));
        }
    }
    Ok(())
}

/// Typed settings from assembled parameters; `env` supplies HOME (for ~/.postgresql and
/// ~/.pgpass), USER and the session variables PGDATESTYLE, PGTZ, PGGEQO.
pub fn build(params: &Params, env: &Env) -> Result<Settings> {
    refuse_unsupported(params)?;
    let get = |k: &str| value(params, k);
    let user = get("user")
        .map(str::to_string)
        .or_else(|| nonempty(env, "USER"))
        .unwrap_or_else(|| "postgres".into());
    let dbname = get("dbname").unwrap_or(&user).to_string();
    let home = nonempty(env, "HOME").map(PathBuf::from);
    let mut targets = targets(get("host"), get("hostaddr"), get("port"))?;
    let passfile = get("passfile")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
    for t in &mut targets {
        t.password = match get("password") {
            Some(p) => Some(p.to_string()),
            None => passfile
                .as_deref()
                .and_then(|f| pgpass::lookup_file(f, &pgpass_host(t), t.port, &dbname, &user)),
        };
    }
    Ok(Settings {
        targets,
        options: options(get("options"), env),
        application_name: get("application_name")
            .or(get("fallback_application_name"))
            .map(str::to_string),
        connect_timeout: connect_timeout(get("connect_timeout"))?,
        keepalives: flag(get("keepalives"), "keepalives", true)?,
        keepalives_idle: seconds(get("keepalives_idle"), "keepalives_idle")?
            .unwrap_or(Duration::from_secs(30)),
        keepalives_interval: seconds(get("keepalives_interval"), "keepalives_interval")?,
        keepalives_count: number(get("keepalives_count"), "keepalives_count")?,
        // Unacknowledged data for a minute ends the connection (libpq waits for the
        // operating system's ~15 minutes): a network partition cannot hold the tool,
        // and the locks it may hold, for long. `tcp_user_timeout=0` restores that.
        tcp_user_timeout: number(get("tcp_user_timeout"), "tcp_user_timeout")?
            .map(|ms: u64| Duration::from_millis(ms))
            .or(Some(DEFAULT_TCP_USER_TIMEOUT))
            .filter(|d| !d.is_zero()),
        channel_binding: channel_binding(get("channel_binding"))?,
        session_attrs: session_attrs(get("target_session_attrs"))?,
        load_balance: match get("load_balance_hosts") {
            None | Some("disable") => false,
            Some("random") => true,
            Some(v) => return Err(bad_value("load_balance_hosts", v, "disable, random")),
        },
        tls: tls_settings(params, home.as_deref())?,
        user,
        dbname,
    })
}

/// The host as the password file knows it: a socket directory counts as `localhost`.
fn pgpass_host(t: &Target) -> String {
    match (&t.host, t.hostaddr) {
        (Some(Host::Tcp(h)), _) => h.clone(),
        (Some(Host::Unix(_)), _) => "localhost".into(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => "localhost".into(),
    }
}

/// libpq's host, hostaddr and port lists, matched up entry by entry.
pub fn targets(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Target>> {
    let list = |s: Option<&str>| -> Vec<String> {
        s.map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let (hosts, addrs, ports) = (list(host), list(hostaddr), list(port));
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(Error::invalid(
            format!(
                "{} host names but {} hostaddr addresses are given",
                hosts.len(),
                addrs.len()
            ),
            "give one hostaddr per host, in the same order",
        ));
    }
    let n = hosts.len().max(addrs.len()).max(1);
    if ports.len() > 1 && ports.len() != n {
        return Err(Error::invalid(
            format!("{n} hosts but {} ports are given", ports.len()),
            "give one port for all hosts, or one per host in the same order",
        ));
    }
    (0..n)
        .map(|i| {
            let hostaddr = match addrs.get(i).filter(|a| !a.is_empty()) {
                Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                    bad_value(
                        "hostaddr",
                        a,
                        "numeric IPv4 or IPv6 addresses (names go in host)",
                    )
                })?),
                None => None,
            };
            let host = match hosts.get(i).filter(|h| !h.is_empty()) {
                Some(h) if h.starts_with('/') => Some(Host::Unix(PathBuf::from(h))),
                Some(h) => Some(Host::Tcp(h.clone())),
                None if hostaddr.is_some() => None,
                None if Path::new(SOCKET_DIR).exists() => Some(Host::Unix(SOCKET_DIR.into())),
                None => Some(Host::Tcp("localhost".into())),
            };
            let port = match ports.get(i).or(ports.first()).filter(|p| !p.is_empty()) {
                Some(p) => p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad_value("port", p, "a port number from 1 to 65535"))?,
                None => 5432,
            };
            Ok(Target {
                host,
                hostaddr,
                port,
                password: None,
            })
        })
        .collect()
}

/// The user's `options`, plus PGDATESTYLE, PGTZ and PGGEQO as libpq sends them.
fn options(options: Option<&str>, env: &Env) -> Option<String> {
    let mut parts: Vec<String> = options.map(str::to_string).into_iter().collect();
    for (var, guc) in [
        ("PGDATESTYLE", "datestyle"),
        ("PGTZ", "timezone"),
        ("PGGEQO", "geqo"),
    ] {
        if let Some(value) = nonempty(env, var) {
            let escaped = value.replace('\\', "\\\\").replace(' ', "\\ ");
            parts.push(format!("-c {guc}={escaped}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// libpq: seconds; zero or less waits forever; 1 counts as 2. hyperswap's default is 10.
fn connect_timeout(v: Option<&str>) -> Result<Option<Duration>> {
    let Some(v) = v else {
        return Ok(Some(Duration::from_secs(10)));
    };
    let secs: i64 = v.trim().parse().map_err(|_| {
        bad_value(
            "connect_timeout",
            v,
            "a whole number of seconds (0 waits forever)",
        )
    })?;
    Ok((secs > 0).then(|| Duration::from_secs(secs.max(2) as u64)))
}

fn number<T: std::str::FromStr>(v: Option<&str>, key: &str) -> Result<Option<T>> {
    v.map(|s| {
        s.trim()
            .parse()
            .map_err(|_| bad_value(key, s, "a whole number"))
    })
    .transpose()
}

fn seconds(v: Option<&str>, key: &str) -> Result<Option<Duration>> {
    Ok(number(v, key)?.map(Duration::from_secs))
}

pub(super) fn flag(v: Option<&str>, key: &str, default: bool) -> Result<bool> {
    match v {
        None => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(bad_value(key, v, "1, 0")),
    }
}

fn channel_binding(v: Option<&str>) -> Result<ChannelBinding> {
    match v {
        None | Some("prefer") => Ok(ChannelBinding::Prefer),
        Some("disable") => Ok(ChannelBinding::Disable),
        Some("require") => Ok(ChannelBinding::Require),
        Some(v) => Err(bad_value("channel_binding", v, "disable, prefer, require")),
    }
}

fn session_attrs(v: Option<&str>) -> Result<SessionAttrs> {
    Ok(match v {
        None | Some("any") => SessionAttrs::Any,
        Some("read-write") => SessionAttrs::ReadWrite,
        Some("read-only") => SessionAttrs::ReadOnly,
        Some("primary") => SessionAttrs::Primary,
        Some("standby") => SessionAttrs::Standby,
        Some("prefer-standby") => SessionAttrs::PreferStandby,
        Some(v) => {
            return Err(bad_value(
                "target_session_attrs",
                v,
                "any, read-write, read-only, primary, standby, prefer-standby",
            ))
        }
    })
}

/// `tcp_user_timeout` when none is given.
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long opening a connection (TCP, TLS and the startup exchange) may take when no
/// `connect_timeout` is given: a server that accepts and never answers is given up on.
pub const DEFAULT_HANDSHAKE: Duration = Duration::from_secs(30);
