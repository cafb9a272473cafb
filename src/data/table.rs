//! CSV loading: a file as header names and text rows, each with its line
//! number for error messages, and the missing-value markers.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A CSV file as text: header names and rows, with each row's line number.
///
/// The cells are kept trimmed, back to back in one string, with one offset
/// per cell: a 1,000,000 × 10 file of numbers takes about the file's size
/// plus 4 bytes a cell, where a `String` per cell took 710 MB for 78 MB of
/// text. The file is read as a stream, never whole.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    /// Every cell's trimmed text, row after row.
    text: String,
    /// Where each row starts in `text`.
    row_start: Vec<usize>,
    /// Each cell's end, from its row's start (`headers.len()` per row).
    cell_end: Vec<u32>,
    /// Each row's line in the file (1-based; the header is line 1).
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
    /// A table from rows already split into cells (generated data, tests).
    pub fn from_rows(
        path: impl Into<PathBuf>,
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
        lines: Vec<u64>,
    ) -> Table {
        let mut t = Table::empty(path.into(), headers);
        for row in &rows {
            t.push_row(row.iter().map(|c| c.as_str()));
        }
        t.lines = lines;
        t
    }

    fn empty(path: PathBuf, headers: Vec<String>) -> Table {
        Table {
            path,
            headers,
            text: String::new(),
            row_start: Vec::new(),
            cell_end: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn push_row<'a>(&mut self, cells: impl Iterator<Item = &'a str>) {
        let start = self.text.len();
        self.row_start.push(start);
        for c in cells {
            self.text.push_str(c.trim());
            self.cell_end.push((self.text.len() - start) as u32);
        }
    }

    /// Rows of data (the header not counted).
    pub fn n_rows(&self) -> usize {
        self.row_start.len()
    }

    /// The trimmed text of cell (row, col).
    pub fn cell(&self, row: usize, col: usize) -> &str {
        let k = self.headers.len();
        let base = self.row_start[row];
        let end = base + self.cell_end[row * k + col] as usize;
        let start = match col {
            0 => base,
            _ => base + self.cell_end[row * k + col - 1] as usize,
        };
        &self.text[start..end]
    }

    /// The cells of a row.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        (0..self.headers.len()).map(move |c| self.cell(row, c))
    }

    /// Read a CSV file with a header row, as a stream.
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Table> {
        Table::from_csv_with_progress(path, &mut |_, _| {})
    }

    /// [`Table::from_csv`], telling `progress(bytes read, file size)` as it
    /// goes (every 64 KiB or so, and at the end).
    pub fn from_csv_with_progress(
        path: impl AsRef<Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Table> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Table::read_csv(path, std::io::BufReader::new(file), size, progress)
    }

    /// A CSV text with a header row, held in memory (a file bundled into a
    /// program, or one a browser page was given); `name` stands for its path
    /// in messages.
    pub fn from_csv_text(name: &str, text: &str) -> Result<Table> {
        let size = text.len() as u64;
        Table::read_csv(Path::new(name), text.as_bytes(), size, &mut |_, _| {})
    }

    fn read_csv(
        path: &Path,
        input: impl std::io::Read,
        size: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Table> {
        let mut told = 0u64;
        let (lines_index, counting) = LineIndex::reader(input);
        let line_of = |p: Option<&csv::Position>| p.map_or(0, |p| lines_index.line(p.byte()));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(counting);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| read_err(path, e, "cannot read the header"))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        check_headers(path, &headers)?;
        let mut table = Table::empty(path.to_path_buf(), headers);
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Err(read_err(path, e, "cannot read the file"));
                    }
                    let line = line_of(e.position());
                    return Err(data_err(path, line, "", format!("malformed CSV: {e}")));
                }
            }
            let line = line_of(record.position());
            if record.len() == 1 && record[0].trim().is_empty() {
                continue; // blank line
            }
            if record.len() != table.headers.len() {
                return Err(data_err(
                    path,
                    line,
                    "",
                    format!(
                        "expected {} fields as in the header, found {}",
                        table.headers.len(),
                        record.len()
                    ),
                ));
            }
            table.push_row(record.iter());
            table.lines.push(line);
            let at = record.position().map_or(0, |p| p.byte());
            if at >= told + (1 << 16) {
                told = at;
                progress(at, size);
            }
        }
        progress(size, size);
        if table.n_rows() == 0 {
            return Err(data_err(
                path,
                1,
                "",
                "the file has a header but no data rows",
            ));
        }
        Ok(table)
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
                eat(self.cell(r, c).as_bytes());
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
        let s = self.cell(row, col);
        if is_missing(s) {
            return Ok(None);
        }
        crate::task::parse_number(s)
            .map(Some)
            .map_err(|reason| data_err(&self.path, self.lines[row], &self.headers[col], reason))
    }
}

/// Line numbers from byte offsets: the csv crate's own count is one short per
/// record with CRLF line endings.
/// Where the lines of a file end, built while the file streams past: the
/// byte offset of every '\n', and each run of '\r'/'\n' bytes as
/// (start, end), so that a record whose position sits on the breaks before it
/// gets the line of its first byte past them (CRLF counted once).
struct LineIndex {
    newlines: Vec<u64>,
    breaks: Vec<(u64, u64)>,
}

impl LineIndex {
    /// A reader that passes `inner` through while noting where lines end,
    /// and the index it fills (shared: the CSV reader owns the reader).
    fn reader<R: std::io::Read>(
        inner: R,
    ) -> (std::rc::Rc<std::cell::RefCell<LineIndex>>, Counting<R>) {
        let index = std::rc::Rc::new(std::cell::RefCell::new(LineIndex {
            newlines: Vec::new(),
            breaks: Vec::new(),
        }));
        (
            index.clone(),
            Counting {
                inner,
                at: 0,
                run_start: None,
                after_cr: false,
                index,
            },
        )
    }
}

/// A reader that records line ends in a [`LineIndex`] as bytes go through.
struct Counting<R> {
    inner: R,
    /// Bytes read so far.
    at: u64,
    /// Where the current run of '\n' / '\r' bytes began.
    run_start: Option<u64>,
    /// The last byte read was '\r' (a '\n' right after it ends no second line).
    after_cr: bool,
    index: std::rc::Rc<std::cell::RefCell<LineIndex>>,
}

/// The longest line a CSV file may have: a file without a line break in its
/// first 64 MiB (`/dev/zero`, a binary file) is not read to the end of memory.
pub const MAX_LINE_BYTES: u64 = 64 << 20;

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut index = self.index.borrow_mut();
        let line_start = index.newlines.last().map_or(0, |&p| p + 1);
        if self.at.saturating_sub(line_start) > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} runs past {} MiB without a line break: not a CSV file",
                    index.newlines.len() + 1,
                    MAX_LINE_BYTES >> 20
                ),
            ));
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            let pos = self.at + i as u64;
            // A line ends at '\n', at '\r\n' (counted once) and at a lone
            // '\r' (old Mac files, whose rows were all "line 1").
            if b == b'\r' || (b == b'\n' && !self.after_cr) {
                index.newlines.push(pos);
            }
            self.after_cr = b == b'\r';
            match (b == b'\n' || b == b'\r', self.run_start) {
                (true, None) => self.run_start = Some(pos),
                (false, Some(start)) => {
                    index.breaks.push((start, pos));
                    self.run_start = None;
                }
                _ => {}
            }
        }
        self.at += n as u64;
        Ok(n)
    }
}

trait LineOf {
    fn line(&self, at: u64) -> u64;
}

impl LineOf for std::rc::Rc<std::cell::RefCell<LineIndex>> {
    /// The 1-based line of the record starting at byte `at`. A record's
    /// position can sit on the line breaks before it (blank lines skipped):
    /// its line is that of its first byte past them.
    fn line(&self, at: u64) -> u64 {
        let index = self.borrow();
        let mut at = at;
        // Past a run of line breaks that `at` falls in.
        let k = index.breaks.partition_point(|&(s, _)| s <= at);
        if k > 0 {
            let (s, e) = index.breaks[k - 1];
            if s <= at && at < e {
                at = e;
            }
        }
        index.newlines.partition_point(|&n| n < at) as u64 + 1
    }
}

fn read_err(path: &Path, e: csv::Error, what: &str) -> Error {
    let said = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "it is not UTF-8 text (save the file as UTF-8)".to_string(),
        _ => e.to_string(),
    };
    match e.into_kind() {
        csv::ErrorKind::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => data_err(path, 1, "", format!("{what}: {said}")),
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
