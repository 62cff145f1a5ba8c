//! Connecting: from a URL (`--database-url` / `DATABASE_URL`) or the libpq variables,
//! and a description of the target that never contains the password.

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Error, Result};

/// Where to connect, resolved once per command.
#[derive(Clone)]
pub struct ConnectOptions {
    config: Config,
}

impl ConnectOptions {
    /// `url` (a `postgres://` URL or a libpq key=value string) when given, otherwise the
    /// libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
    pub fn resolve(url: Option<&str>) -> Result<Self> {
        let mut config = match url {
            Some(url) => url.parse::<Config>().map_err(|e| {
                Error::invalid(
                    format!("the database URL cannot be parsed: {e}"),
                    "pass --database-url postgres://USER@HOST:PORT/DATABASE (the password belongs in PGPASSWORD, not on the command line)",
                )
            })?,
            None => from_libpq_env(),
        };
        fill_libpq_defaults(&mut config);
        config.connect_timeout(Duration::from_secs(10));
        config.keepalives_idle(Duration::from_secs(30));
        Ok(ConnectOptions { config })
    }

    /// `user@host:port/dbname`, never the password.
    pub fn describe(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .first()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{}:{}/{}",
            self.config.get_user().unwrap_or("?"),
            host,
            port,
            self.config.get_dbname().unwrap_or("?")
        )
    }

    /// Opens a connection tagged with `application_name` (so a DBA sees it in
    /// `pg_stat_activity`), driving it on a background task.
    pub async fn connect(&self, application_name: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let (client, connection) = config.connect(NoTls).await.map_err(|source| Error::Db {
            context: format!("cannot connect to {}", self.describe()),
            source,
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection closed: {e}");
            }
        });
        client
            .batch_execute(crate::stmt::SESSION_SETTINGS)
            .await
            .map_err(|source| Error::Db {
                context: "pinning the session's settings".into(),
                source,
            })?;
        Ok(client)
    }
}

fn from_libpq_env() -> Config {
    let mut config = Config::new();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(hosts) = var("PGHOST") {
        for h in hosts.split(',') {
            config.host(h);
        }
    }
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        config.port(port);
    }
    if let Some(user) = var("PGUSER") {
        config.user(&user);
    }
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    if let Some(db) = var("PGDATABASE") {
        config.dbname(&db);
    }
    config
}

/// libpq's defaults for what was not given: the OS user, a database named like the user,
/// PGPASSWORD when the URL carried no password, and the local socket or localhost.
fn fill_libpq_defaults(config: &mut Config) {
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = std::env::var("PGDATABASE")
            .unwrap_or_else(|_| config.get_user().unwrap_or("postgres").to_string());
        config.dbname(&db);
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_hosts().is_empty() {
        if std::path::Path::new("/var/run/postgresql").exists() {
            config.host_path("/var/run/postgresql");
        } else {
            config.host("localhost");
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = pgpass_password(config) {
            config.password(password);
        }
    }
}

/// The password for this connection from the password file, as libpq reads it:
/// PGPASSFILE or ~/.pgpass, lines `host:port:database:user:password` with `*` wildcards
/// and `\:` / `\\` escapes, first match wins, ignored unless only its owner can read it.
fn pgpass_password(config: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "password file {} is readable by others; ignored (chmod 0600 it)",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        #[cfg(unix)]
        Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        config.get_dbname()?,
        config.get_user()?,
    ];
    pgpass_lookup(&text, &want)
}

fn pgpass_lookup(text: &str, want: &[&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = want.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let text = "# comment\ndb.example:5432:app:alice:s\\:cret\n*:*:*:bob:pw2\n";
        assert_eq!(
            pgpass_lookup(text, &["db.example", "5432", "app", "alice"]).as_deref(),
            Some("s:cret")
        );
        assert_eq!(
            pgpass_lookup(text, &["other", "6543", "x", "bob"]).as_deref(),
            Some("pw2")
        );
        assert_eq!(
            pgpass_lookup(text, &["db.example", "5433", "app", "alice"]),
            None
        );
    }

    #[test]
    fn describe_never_shows_the_password() {
        let c =
            ConnectOptions::resolve(Some("postgres://alice:s3cret@db.example:6543/app")).unwrap();
        let d = c.describe();
        assert_eq!(d, "alice@db.example:6543/app");
        assert!(!d.contains("s3cret"));
    }
}
