//! Writing to the terminal: a buffered stdout whose errors (a closed pipe above all) are
//! returned rather than panicking as `println!` would, aligned text tables, and the number
//! formatting of the JSON result lines.

use std::io::{self, BufWriter, StdoutLock, Write};

use super::error::{CliError, CliResult};

/// A buffered, locked stdout. Flush it explicitly: errors on drop are lost.
pub type Out = BufWriter<StdoutLock<'static>>;

/// Opens stdout for buffered writing.
pub fn stdout() -> Out {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Maps a stdout write error (a closed pipe ends the command quietly, see `CliError`).
pub fn write_err(e: io::Error) -> CliError {
    CliError::Io {
        action: "writing to stdout",
        source: e,
    }
}

/// Writes one line to stdout and flushes it.
pub fn print_line(line: &str) -> CliResult {
    let mut out = stdout();
    writeln!(out, "{line}").map_err(write_err)?;
    out.flush().map_err(write_err)
}

/// Formats rows as a table: every column right-aligned to its widest cell except the first
/// `left` columns, which are left-aligned; columns are separated by two spaces.
pub fn table(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c < left {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A JSON number rounded to `decimals` places (`null` if it is not finite).
pub fn json_number(x: f64, decimals: i32) -> String {
    let scale = 10f64.powi(decimals);
    serde_json::Value::from((x * scale).round() / scale).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["NAME".to_string(), "N".to_string()],
            vec!["a".to_string(), "100".to_string()],
        ];
        assert_eq!(table(&rows, 1), "NAME    N\na     100\n");
    }

    #[test]
    fn json_numbers_are_rounded_and_never_nan() {
        assert_eq!(json_number(1.23456, 2), "1.23");
        assert_eq!(json_number(f64::NAN, 2), "null");
    }
}
