//! sslmode and its companion settings, checked and given libpq's defaults: sslmode
//! `prefer` (`verify-full` with sslrootcert=system), ~/.postgresql/root.crt,
//! postgresql.crt and postgresql.key.

use std::path::{Path, PathBuf};

use super::params::Params;
use super::settings::{bad_value, flag, named, value};
use crate::error::{Error, Result};

/// libpq's sslmode values, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const MODES: [(SslMode, &str); 6] = [
    (SslMode::Disable, "disable"),
    (SslMode::Allow, "allow"),
    (SslMode::Prefer, "prefer"),
    (SslMode::Require, "require"),
    (SslMode::VerifyCa, "verify-ca"),
    (SslMode::VerifyFull, "verify-full"),
];

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        MODES.iter().find(|(_, n)| *n == s).map(|(m, _)| *m)
    }
    pub fn name(self) -> &'static str {
        MODES
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RootCert {
    None,
    File(PathBuf),
    /// The system's trusted CAs (sslrootcert=system).
    System,
}

#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// sslnegotiation=direct: TLS from the first byte (PostgreSQL 17+).
    pub direct: bool,
    pub root: RootCert,
    /// Client certificate chain and key files.
    pub client: Option<(PathBuf, PathBuf)>,
    pub sni: bool,
    pub min_tls13: bool,
    pub max_tls12: bool,
}

/// sslmode and its companions, with libpq's defaults: sslmode `prefer` (`verify-full`
/// with sslrootcert=system), ~/.postgresql/root.crt, postgresql.crt and postgresql.key.
pub fn tls_settings(params: &Params, home: Option<&Path>) -> Result<TlsSettings> {
    let get = |k: &str| value(params, k);
    let dot = |f: &str| home.map(|h| h.join(".postgresql").join(f));
    let system = get("sslrootcert") == Some("system");
    let mode = match get("sslmode") {
        None if system => SslMode::VerifyFull,
        None if flag(get("requiressl"), "requiressl", false)? => SslMode::Require,
        None => SslMode::Prefer,
        Some(v) => SslMode::parse(v).ok_or_else(|| {
            bad_value(
                "sslmode",
                v,
                "disable, allow, prefer, require, verify-ca, verify-full",
            )
        })?,
    };
    if system && mode != SslMode::VerifyFull {
        return Err(Error::invalid(
            format!("sslmode `{}` is too weak for sslrootcert=system", mode.name()),
            "use sslmode=verify-full (the default with sslrootcert=system), or name a CA file in sslrootcert",
        ));
    }
    let direct = match get("sslnegotiation") {
        None | Some("postgres") => false,
        Some("direct") => true,
        Some(v) => return Err(bad_value("sslnegotiation", v, "postgres, direct")),
    };
    if direct && mode < SslMode::Require {
        return Err(Error::invalid(
            format!("sslnegotiation=direct cannot be used with sslmode `{}`", mode.name()),
            "use sslmode=require, verify-ca or verify-full with sslnegotiation=direct (PostgreSQL 17 or later)",
        ));
    }
    let root = match get("sslrootcert") {
        // Without TLS no certificate file is read, as in libpq.
        _ if mode == SslMode::Disable => RootCert::None,
        Some("system") => RootCert::System,
        Some(path) => RootCert::File(existing(path, "sslrootcert")?),
        None => match dot("root.crt").filter(|p| p.exists()) {
            Some(p) => RootCert::File(p),
            None => RootCert::None,
        },
    };
    if mode >= SslMode::VerifyCa && root == RootCert::None {
        return Err(Error::invalid(
            format!("sslmode `{}` needs the CA that signed the server's certificate, and no root certificate file is given (nor ~/.postgresql/root.crt)", mode.name()),
            "name the CA file in sslrootcert (or PGSSLROOTCERT), use sslrootcert=system for the system's CAs, or a weaker sslmode",
        ));
    }
    let client = match get("sslcertmode") {
        _ if mode == SslMode::Disable => None,
        Some("disable") => None,
        None | Some("allow") => client_cert(params, &dot)?,
        Some(v) => return Err(bad_value("sslcertmode", v, "allow, disable")),
    };
    Ok(TlsSettings {
        mode,
        direct,
        root,
        client,
        sni: flag(get("sslsni"), "sslsni", true)?,
        min_tls13: protocol(get("ssl_min_protocol_version"), "ssl_min_protocol_version")? == 13,
        max_tls12: protocol(get("ssl_max_protocol_version"), "ssl_max_protocol_version")? == 12,
    })
}

fn existing(path: &str, key: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        Ok(p)
    } else {
        Err(Error::invalid(
            format!("the file named by {} does not exist: {path}", named(key)),
            "correct the path, or leave the setting out",
        ))
    }
}

/// The client certificate and key: explicit files must exist; libpq's defaults are used
/// only when present.
fn client_cert(
    params: &Params,
    dot: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>> {
    let get = |k: &str| value(params, k);
    let cert = match get("sslcert") {
        Some(p) => existing(p, "sslcert")?,
        None => match dot("postgresql.crt").filter(|p| p.exists()) {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let key = match get("sslkey") {
        Some(p) => PathBuf::from(p),
        None => dot("postgresql.key").unwrap_or_default(),
    };
    if !key.exists() {
        return Err(Error::invalid(
            format!("client certificate {} has no private key file ({} does not exist)", cert.display(), key.display()),
            "name the key in sslkey (or PGSSLKEY), or set sslcertmode=disable to send no certificate",
        ));
    }
    Ok(Some((cert, key)))
}

/// TLS versions as libpq names them; the TLS library speaks 1.2 and 1.3 only.
fn protocol(v: Option<&str>, key: &str) -> Result<u8> {
    match v {
        None => Ok(0),
        Some("TLSv1.2") => Ok(12),
        Some("TLSv1.3") => Ok(13),
        Some(v) => Err(bad_value(
            key,
            v,
            "TLSv1.2, TLSv1.3 (older versions are not available)",
        )),
    }
}
