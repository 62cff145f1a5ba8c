//! Connection service files (pg_service.conf), read as libpq reads them: INI sections
//! of libpq keywords, the user's file first, then the system's.

use std::path::{Path, PathBuf};

use super::params::{known, nonempty, Env, Params};
use crate::error::{Error, Result};

/// Where Debian's libpq looks for the system-wide service file when PGSYSCONFDIR is unset.
const SYSCONFDIR: &str = "/etc/postgresql-common";

/// The parameters of `service` from the user's service file (PGSERVICEFILE, else
/// ~/.pg_service.conf) or, when it is not there, the system's
/// (PGSYSCONFDIR/pg_service.conf), as libpq looks them up.
pub fn service_params(service: &str, env: &Env) -> Result<Params> {
    let user_file = nonempty(env, "PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| nonempty(env, "HOME").map(|h| Path::new(&h).join(".pg_service.conf")));
    let sys_dir = nonempty(env, "PGSYSCONFDIR").unwrap_or_else(|| SYSCONFDIR.into());
    let files: Vec<PathBuf> = user_file
        .into_iter()
        .chain([Path::new(&sys_dir).join("pg_service.conf")])
        .collect();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(params) = parse_service_file(&text, service, file)? {
            return Ok(params);
        }
    }
    let searched: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(Error::invalid(
        format!(
            "the connection service `{service}` is not defined (looked in {})",
            searched.join(" and ")
        ),
        "add a [section] of that name to the service file, point PGSERVICEFILE at the file that has it, or correct PGSERVICE / service=",
    ))
}

/// The `[service]` section of a pg_service.conf text, if it has one.
pub fn parse_service_file(text: &str, service: &str, file: &Path) -> Result<Option<Params>> {
    let mut found: Option<Params> = None;
    let mut in_section = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            Error::invalid(
                format!("service file {}, line {}: {why}", file.display(), n + 1),
                "each line is `[service name]`, `keyword=value` or a `#` comment",
            )
        };
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| bad("`[` without `]`"))?;
            if found.is_some() && in_section {
                return Ok(found);
            }
            in_section = name == service;
            if in_section {
                found = Some(Params::new());
            }
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad("no `=` in the line"))?;
        let key = k.trim();
        if !known(key) {
            return Err(bad(&format!("unknown keyword `{key}`")));
        }
        if key == "service" {
            return Err(bad("a service cannot name another service"));
        }
        if let Some(params) = found.as_mut().filter(|_| in_section) {
            params
                .entry(key.to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    Ok(found)
}
