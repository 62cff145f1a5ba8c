//! `{{name}}` placeholders in the SQL templates under `sql/`.

/// Replaces each `{{name}}` with its value. Panics on a placeholder left unfilled, which
/// is a programming error caught by the tests.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.trim_end().trim_end_matches(';').to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    assert!(
        !out.contains("{{"),
        "unfilled placeholder in SQL template: {out}"
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fills_every_placeholder() {
        assert_eq!(
            super::render(
                "SELECT {{a}} + {{a}}, {{b}};\n",
                &[("a", "1".into()), ("b", "2".into())]
            ),
            "SELECT 1 + 1, 2"
        );
    }
}
