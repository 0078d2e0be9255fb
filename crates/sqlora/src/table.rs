//! Plain-text tables for query results and reports.

use sqlora_sql::exec::Value;

/// Renders one value the way a person reads it in a terminal.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format!("{r}"),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("<blob {} bytes>", b.len()),
    }
}

/// An aligned table with a header line; cells longer than `max_width` characters are cut.
pub fn render(columns: &[String], rows: &[Vec<Value>], max_width: usize) -> String {
    let cut = |s: String| -> String {
        if s.chars().count() > max_width {
            let mut t: String = s.chars().take(max_width.saturating_sub(1)).collect();
            t.push('…');
            t
        } else {
            s
        }
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| cut(cell(v).replace('\n', " "))).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in &body {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{c:<w$}")
            })
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(columns));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for r in &body {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_cuts() {
        let t = render(
            &["id".into(), "name".into()],
            &[
                vec![Value::Integer(1), Value::Text("Ada".into())],
                vec![Value::Integer(22), Value::Null],
                vec![Value::Integer(3), Value::Text("x".repeat(50))],
            ],
            10,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "id | name");
        assert_eq!(lines[1], "---+-----------");
        assert_eq!(lines[2], "1  | Ada");
        assert_eq!(lines[3], "22 | NULL");
        assert_eq!(lines[4], format!("3  | {}…", "x".repeat(9)));
    }
}
