//! libpq's connection parameters as text: parsed from a `postgres://` URL or a key=value
//! string, then completed, as libpq completes them, from a service file and the
//! environment. Values are kept as given; `settings` gives them types.

use std::collections::BTreeMap;

use super::service;
use crate::error::{Error, Result};

/// Keyword → value, as libpq names them.
pub type Params = BTreeMap<String, String>;

/// The process environment, or a test's stand-in for it.
pub type Env = BTreeMap<String, String>;

/// Every libpq keyword, with the variable that supplies it when nothing else does.
/// Which of them hyperswap honours, and which it refuses, is `settings`'s business.
pub const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("require_auth", Some("PGREQUIREAUTH")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("replication", None),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("sslmode", Some("PGSSLMODE")),
    ("requiressl", Some("PGREQUIRESSL")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("gssdelegation", Some("PGGSSDELEGATION")),
    ("service", Some("PGSERVICE")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

pub(super) fn known(key: &str) -> bool {
    KEYWORDS.iter().any(|(k, _)| *k == key)
}

/// The parameters for one command, as libpq would assemble them: the connection string
/// first, then the service it names (or PGSERVICE), then the environment.
pub fn assemble(conninfo: Option<&str>, env: &Env) -> Result<Params> {
    let mut params = match conninfo {
        Some(s) => parse(s)?,
        None => Params::new(),
    };
    let service = params
        .get("service")
        .cloned()
        .or_else(|| nonempty(env, "PGSERVICE"));
    if let Some(service) = service {
        for (k, v) in service::service_params(&service, env)? {
            params.entry(k).or_insert(v);
        }
    }
    for (key, var) in KEYWORDS {
        if let Some(value) = var.and_then(|var| nonempty(env, var)) {
            params.entry(key.to_string()).or_insert(value);
        }
    }
    Ok(params)
}

pub fn nonempty(env: &Env, var: &str) -> Option<String> {
    env.get(var).filter(|v| !v.is_empty()).cloned()
}

/// A `postgres://` / `postgresql://` URL or a libpq key=value string.
pub fn parse(s: &str) -> Result<Params> {
    let s = s.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            return parse_url(rest);
        }
    }
    if s.contains("://") {
        return Err(url_error(
            "its scheme is not `postgres://` or `postgresql://`".into(),
        ));
    }
    parse_keyword_value(s)
}

fn url_error(why: String) -> Error {
    Error::invalid(
        format!("the database URL cannot be parsed: {why}"),
        "write it as postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full (hosts as HOST1:PORT1,HOST2:PORT2; the password belongs in PGPASSWORD or ~/.pgpass, not on the command line)",
    )
}

fn parse_url(rest: &str) -> Result<Params> {
    let mut params = Params::new();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            set(&mut params, "user", decode(user, "the user name")?);
            if let Some(p) = password {
                // Never echo the password, even when it is malformed.
                let p = decode(p, "the password")
                    .map_err(|_| url_error("the password has an invalid %-escape".into()))?;
                set(&mut params, "password", p);
            }
            hosts
        }
        None => authority,
    };
    parse_url_hosts(hostlist, &mut params)?;
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        set(&mut params, "dbname", decode(db, "the database name")?);
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| url_error(format!("the parameter `{pair}` has no `=value`")))?;
        let key = decode(k, "a parameter name")?;
        // libpq's one alias, from JDBC: ssl=true means sslmode=require.
        let (key, value) = if key == "ssl" && v == "true" {
            ("sslmode".to_string(), "require".to_string())
        } else {
            let value = decode(v, &format!("the value of `{key}`"))?;
            (key, value)
        };
        if !known(&key) {
            return Err(url_error(format!("unknown parameter `{key}`")));
        }
        set(&mut params, &key, value);
    }
    Ok(params)
}

/// `h1:5432,[::1]:5433,h3` into host and port lists; an empty entry means the default.
fn parse_url_hosts(list: &str, params: &mut Params) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    for spec in list.split(',') {
        let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| {
                url_error(format!("the host `{spec}` has `[` without its closing `]`"))
            })?;
            let port = match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| {
                    url_error(format!(
                        "after the IPv6 address in `{spec}` only `:PORT` may follow"
                    ))
                })?,
            };
            (addr.to_string(), port)
        } else {
            let (h, p) = spec.split_once(':').unwrap_or((spec, ""));
            (decode(h, "a host name")?, p)
        };
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(url_error(format!(
                "the port `{port}` of host `{host}` is not a number from 1 to 65535"
            )));
        }
        hosts.push(host);
        ports.push(port.to_string());
    }
    set(params, "host", hosts.join(","));
    if ports.iter().any(|p| !p.is_empty()) {
        set(params, "port", ports.join(","));
    }
    Ok(())
}

fn set(params: &mut Params, key: &str, value: String) {
    params.insert(key.to_string(), value);
}

/// Percent-decoding, as libpq applies it to every part of a URL.
fn decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| {
                url_error(format!(
                    "{what} has an invalid %-escape (write %XX with two hex digits)"
                ))
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| url_error(format!("{what} is not UTF-8 once %-decoded")))
}

fn kv_error(why: String) -> Error {
    Error::invalid(
        format!("the connection string cannot be parsed: {why}"),
        "write it as `host=HOST port=PORT dbname=DB user=USER sslmode=verify-full`, quoting values that contain spaces with '...', or as a postgres:// URL",
    )
}

/// libpq's `key = value` list: values may be single-quoted; `\` escapes the next character.
fn parse_keyword_value(s: &str) -> Result<Params> {
    let mut params = Params::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(kv_error(format!("`{key}` is not followed by `=`")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(kv_error(format!(
                            "the value of `{key}` has no closing quote"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if !known(&key) {
            return Err(kv_error(format!("unknown keyword `{key}`")));
        }
        params.insert(key, value);
    }
}
