//! `{{name}}` placeholders in the SQL templates under `sql/`.

/// Replaces each `{{name}}` of the template with its value, in one pass: text from the
/// values (identifiers, literals) is never scanned for placeholders again. Panics on a
/// placeholder without a value, a programming error the tests catch.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let template = template.trim_end().trim_end_matches(';');
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed placeholder in SQL template: {after}"));
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no value for placeholder {{{{{name}}}}} in SQL template"));
        out.push_str(&value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn fills_every_placeholder() {
        assert_eq!(
            render(
                "SELECT {{a}} + {{a}}, {{b}};\n",
                &[("a", "1".into()), ("b", "2".into())]
            ),
            "SELECT 1 + 1, 2"
        );
    }

    #[test]
    fn values_are_not_scanned_again() {
        assert_eq!(
            render(
                "{{a}} {{b}}",
                &[("a", "\"{{b}}\"".into()), ("b", "x".into())]
            ),
            "\"{{b}}\" x"
        );
    }
}
