//! Identifier and literal quoting: the one place SQL text is assembled from names.
//!
//! Every identifier hyperswap writes into SQL goes through [`quote_ident`] (or a
//! [`QualifiedName`]); every value goes through a bound parameter. The only literals
//! written into SQL text are those DDL cannot take as parameters (comments, regclass
//! arguments), and they go through [`quote_literal`].

use std::fmt;

/// Maximum identifier length PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// Quotes an identifier exactly as PostgreSQL's `quote_ident` would, but always.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL text (standard_conforming_strings = on).
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// `body` as a dollar-quoted string whose tag does not occur in it, so nothing inside
/// (a crafted identifier, say) can end the string early.
pub fn dollar_quote(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$hyperswap$".to_string()
        } else {
            format!("$hyperswap{n}$")
        };
        if !body.contains(&tag) {
            return format!("{tag}{body}{tag}");
        }
        n += 1;
    }
}

/// A schema-qualified relation (or function) name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `schema.table`, `table` (schema `public`), with `"quoted"` parts allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts = split_qualified(text.trim())?;
        match parts.as_slice() {
            [name] => Ok(QualifiedName::new("public", name.clone())),
            [schema, name] => Ok(QualifiedName::new(schema.clone(), name.clone())),
            _ => Err(format!(
                "`{text}` is not a table name: expected `table` or `schema.table`"
            )),
        }
    }

    /// `"schema"."name"`, for SQL text.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The quoted name as a string literal, for `regclass` arguments.
    pub fn literal(&self) -> String {
        quote_literal(&self.quoted())
    }

    /// The same schema with another relation name.
    pub fn sibling(&self, name: impl Into<String>) -> Self {
        QualifiedName::new(self.schema.clone(), name)
    }
}

impl fmt::Display for QualifiedName {
    /// Human form: `schema.name`, quoting only parts that need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// A column (or other single) name as SQL reads it: bare names fold to lower case,
/// `"Quoted"` ones keep theirs.
pub fn parse_ident(text: &str) -> Result<String, String> {
    let parts = split_qualified(text.trim())?;
    match parts.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("`{text}` is not a column name")),
    }
}

/// An identifier as a human would write it: bare when that is unambiguous.
pub fn display_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// `name` with `suffix`, within PostgreSQL's identifier limit. A name too long is cut
/// and given a short hash of the whole, so two long names never end up the same.
pub fn with_suffix(name: &str, suffix: &str) -> String {
    if name.len() + suffix.len() <= MAX_IDENT_BYTES {
        return format!("{name}{suffix}");
    }
    use sha2::{Digest, Sha256};
    let hash = hex(&Sha256::digest(name.as_bytes())[..4]);
    let room = MAX_IDENT_BYTES.saturating_sub(suffix.len() + hash.len() + 1);
    let mut cut = name.len().min(room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}{suffix}", &name[..cut])
}

fn split_qualified(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("unterminated quote in `{text}`")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return Err(format!(
                        "`{text}` has `{c}` outside quotes: write the name as \"{text}\" if it is literal"
                    ));
                }
                // Unquoted identifiers fold to lower case, as in SQL.
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("`{text}` has an empty name part"));
        }
        if part.len() > MAX_IDENT_BYTES {
            return Err(format!(
                "`{part}` is longer than PostgreSQL's 63-byte identifier limit"
            ));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected `{c}` in `{text}`")),
        }
    }
}

/// Lower-case hex of `bytes` (digests in names and in the journal).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }

    #[test]
    fn parses_qualified_names() {
        assert_eq!(
            QualifiedName::parse("metrics").unwrap(),
            QualifiedName::new("public", "metrics")
        );
        assert_eq!(
            QualifiedName::parse("App.Metrics").unwrap(),
            QualifiedName::new("app", "metrics")
        );
        assert_eq!(
            QualifiedName::parse("\"My Schema\".\"a.b\"").unwrap(),
            QualifiedName::new("My Schema", "a.b")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
        assert!(QualifiedName::parse("a;drop").is_err());
        assert!(QualifiedName::parse("").is_err());
    }

    #[test]
    fn suffix_respects_the_identifier_limit_without_collisions() {
        let long = "x".repeat(70);
        let n = with_suffix(&long, "_hs_new");
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("_hs_new"));
        let a = with_suffix(&format!("{}_1", "y".repeat(60)), "");
        let b = with_suffix(&format!("{}_2", "y".repeat(60)), "");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_eq!(with_suffix("short", "_hs_new"), "short_hs_new");
    }

    #[test]
    fn dollar_quotes_never_end_early() {
        assert_eq!(dollar_quote("x"), "$hyperswap$x$hyperswap$");
        let q = dollar_quote("a $hyperswap$ b");
        assert!(q.starts_with("$hyperswap1$") && q.ends_with("$hyperswap1$"));
    }
}
