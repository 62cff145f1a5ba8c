//! Turning the unmatched rows of a range into per-key differences.

use super::ranges::KeyValue;
use super::{DiffKind, Difference};

/// One side's cells of a row, as text (None = NULL).
type Cells = Vec<Option<String>>;

/// Turns the unmatched rows of both sides into per-key differences. Rows come as
/// (key, live cells, mirror cells), one side NULL.
pub(super) fn classify(
    columns: &[&str],
    rows: impl Iterator<
        Item = (
            KeyValue,
            Option<Vec<Option<String>>>,
            Option<Vec<Option<String>>>,
        ),
    >,
) -> Vec<Difference> {
    let mut by_key: Vec<(KeyValue, Vec<Cells>, Vec<Cells>)> = Vec::new();
    for (key, live, mirror) in rows {
        if by_key.last().map(|(k, _, _)| k != &key).unwrap_or(true) {
            by_key.push((key, vec![], vec![]));
        }
        let entry = by_key.last_mut().expect("just pushed");
        entry.1.extend(live);
        entry.2.extend(mirror);
    }
    by_key
        .into_iter()
        .map(|(key, live, mirror)| {
            let (kind, columns) = match (live.first(), mirror.first()) {
                (Some(l), Some(m)) => (
                    DiffKind::Different,
                    columns
                        .iter()
                        .zip(l.iter().zip(m))
                        .filter(|(_, (a, b))| a != b)
                        .map(|(c, _)| c.to_string())
                        .collect(),
                ),
                (Some(_), None) => (DiffKind::Missing, vec![]),
                _ => (DiffKind::Extra, vec![]),
            };
            Difference {
                key: crate::model::Key::display(&key),
                key_values: key,
                kind,
                columns,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[Option<&str>]) -> Option<Vec<Option<String>>> {
        Some(v.iter().map(|c| c.map(String::from)).collect())
    }

    #[test]
    fn classifies_missing_extra_and_changed_columns() {
        let k = |s: &str| vec![s.to_string()];
        let rows = vec![
            (k("1"), cells(&[Some("1"), None]), None),
            (k("1"), None, cells(&[Some("1"), Some("")])),
            (k("2"), cells(&[Some("2"), Some("a")]), None),
            (k("3"), None, cells(&[Some("3"), Some("b")])),
        ];
        let d = classify(&["id", "s"], rows.into_iter());
        assert_eq!(
            d[0],
            Difference {
                key: "1".into(),
                key_values: vec!["1".into()],
                kind: DiffKind::Different,
                columns: vec!["s".into()]
            }
        );
        assert_eq!(d[1].kind, DiffKind::Missing);
        assert_eq!(d[2].kind, DiffKind::Extra);
    }
}
