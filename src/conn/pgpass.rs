//! The password file, read as libpq reads it: lines `host:port:database:user:password`
//! with `*` wildcards and `\:` / `\\` escapes, first match wins, ignored unless only its
//! owner can read it.

use std::path::Path;

/// The password for this server, database and user from the file at `path`, if any.
pub fn lookup_file(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "password file {} is readable by others; ignored (chmod 0600 it)",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    lookup(&text, &[host, &port.to_string(), dbname, user])
}

pub fn lookup(text: &str, want: &[&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = want.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

fn split(line: &str) -> Vec<String> {
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
            lookup(text, &["db.example", "5432", "app", "alice"]).as_deref(),
            Some("s:cret")
        );
        assert_eq!(
            lookup(text, &["other", "6543", "x", "bob"]).as_deref(),
            Some("pw2")
        );
        assert_eq!(lookup(text, &["db.example", "5433", "app", "alice"]), None);
    }
}
