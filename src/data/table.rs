//! CSV loading: a file as header names and text rows, each with its line
//! number for error messages, and the missing-value markers.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A CSV file as text: header names and rows, with each row's line number.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub lines: Vec<u64>,
}

fn data_err(path: &Path, line: u64, column: &str, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// Values read as a missing label or input, in every kind of column: empty,
/// NA, N/A, null and `?` (NaN and infinities are refused as not finite, in
/// every kind of column too).
pub fn is_missing(s: &str) -> bool {
    matches!(s.trim(), "" | "NA" | "N/A" | "na" | "null" | "NULL" | "?")
}

impl Table {
    /// Read a CSV file with a header row.
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let lines_index = LineIndex::new(&bytes);
        let line_of = |p: Option<&csv::Position>| p.map_or(0, |p| lines_index.line(p.byte()));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(&bytes[..]);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| data_err(path, 1, "", format!("cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        check_headers(path, &headers)?;
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = line_of(e.position());
                data_err(path, line, "", format!("malformed CSV: {e}"))
            })?;
            let line = line_of(record.position());
            if record.len() == 1 && record[0].trim().is_empty() {
                continue; // blank line
            }
            if record.len() != headers.len() {
                return Err(data_err(
                    path,
                    line,
                    "",
                    format!(
                        "expected {} fields as in the header, found {}",
                        headers.len(),
                        record.len()
                    ),
                ));
            }
            rows.push(record.iter().map(|s| s.trim().to_string()).collect());
            lines.push(line);
        }
        if rows.is_empty() {
            return Err(data_err(
                path,
                1,
                "",
                "the file has a header but no data rows",
            ));
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
            lines,
        })
    }

    /// FNV-1a (64 bits) of the cells of `columns` in `rows`, in order: the
    /// same rows of the same columns give the same value, whatever else the
    /// file holds.
    pub fn fingerprint(&self, rows: &[usize], columns: &[usize]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for &r in rows {
            for &c in columns {
                eat(self.rows[r][c].trim().as_bytes());
                eat(&[0x1f]);
            }
            eat(&[0x1e]);
        }
        h
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            data_err(
                &self.path,
                1,
                name,
                format!(
                    "no such column; the header has: {}",
                    self.headers.join(", ")
                ),
            )
        })
    }

    /// Parse cell (row, col) as a finite number; `Ok(None)` when missing.
    pub fn number(&self, row: usize, col: usize) -> Result<Option<f32>> {
        let s = &self.rows[row][col];
        if is_missing(s) {
            return Ok(None);
        }
        let v: f32 = s.parse().map_err(|_| {
            data_err(
                &self.path,
                self.lines[row],
                &self.headers[col],
                format!("{s:?} is not a number"),
            )
        })?;
        if !v.is_finite() {
            // 1e39 parses (as infinity) but is a finite number too large for f32.
            let too_large = s.trim().parse::<f64>().is_ok_and(f64::is_finite);
            return Err(data_err(
                &self.path,
                self.lines[row],
                &self.headers[col],
                if too_large {
                    format!("{s:?} is too large: taskgrad computes in f32, whose largest value is 3.4e38")
                } else {
                    format!("{s:?} is not finite")
                },
            ));
        }
        Ok(Some(v))
    }
}

/// Line numbers from byte offsets: the csv crate's own count is one short per
/// record with CRLF line endings.
struct LineIndex<'a> {
    bytes: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let newlines = (0..bytes.len()).filter(|&i| bytes[i] == b'\n').collect();
        LineIndex { bytes, newlines }
    }

    /// The 1-based line of the record starting at byte `at`. A record's
    /// position can sit on the line breaks before it (blank lines skipped):
    /// its line is that of its first byte past them.
    fn line(&self, at: u64) -> u64 {
        let mut at = at as usize;
        while at < self.bytes.len() && matches!(self.bytes[at], b'\n' | b'\r') {
            at += 1;
        }
        self.newlines.partition_point(|&n| n < at) as u64 + 1
    }
}

/// A header row must name at least one column, and no name twice.
fn check_headers(path: &Path, headers: &[String]) -> Result<()> {
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err(data_err(
            path,
            1,
            "",
            "the file is empty: expected a header row naming the columns",
        ));
    }
    for (j, h) in headers.iter().enumerate() {
        if let Some(i) = headers[..j].iter().position(|g| g == h && !h.is_empty()) {
            return Err(data_err(
                path,
                1,
                h,
                format!("columns {} and {} are both named {h:?}", i + 1, j + 1),
            ));
        }
    }
    Ok(())
}
