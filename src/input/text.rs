//! Text files (CSV, TSV, TXT): encoding detection, a streaming decoder, delimiter sniffing and
//! a record iterator that keeps each record's starting line number.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use encoding_rs::{Decoder, Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use super::header::Row;
use super::InputError;

/// The encoding chosen and how it was found.
#[derive(Clone, Copy, Debug)]
pub struct Detected {
    pub encoding: &'static Encoding,
    pub bom: bool,
    /// Read as Windows-1252 although parts of the file are valid UTF-8 beyond ASCII: some
    /// rows were written as UTF-8 and others not.
    pub mixed: bool,
}

impl Detected {
    pub fn label(&self) -> String {
        if self.bom {
            format!("{} with BOM", self.encoding.name())
        } else {
            self.encoding.name().to_string()
        }
    }
}

/// Resolves an `--encoding` label (encoding_rs/WHATWG labels plus a few Windows names).
pub fn encoding_for_label(path: &Path, label: &str) -> Result<&'static Encoding, InputError> {
    let l = label.trim().to_ascii_lowercase();
    let alias = match l.as_str() {
        "unicode" | "utf16" | "utf-16" | "utf16le" | "ucs-2" | "ucs2" => Some(UTF_16LE),
        "utf16be" => Some(UTF_16BE),
        "ansi" | "cp1252" | "windows1252" => Some(WINDOWS_1252),
        "utf8" => Some(UTF_8),
        _ => None,
    };
    alias
        .or_else(|| Encoding::for_label(l.as_bytes()))
        .ok_or_else(|| InputError::BadOption {
            path: path.to_path_buf(),
            message: format!(
                "unknown encoding '{label}': use utf-8, utf-16le, utf-16be or windows-1252 \
                 (any WHATWG encoding label works)"
            ),
        })
}

/// Detects the encoding of a text file from its first bytes (`head`) and, when there is no BOM,
/// a streaming UTF-8 check of the whole file. `Err` for binary content.
pub fn detect_encoding(path: &Path, head: &[u8]) -> Result<Detected, InputError> {
    if let Some((enc, _)) = Encoding::for_bom(head) {
        return Ok(Detected {
            encoding: enc,
            bom: true,
            mixed: false,
        });
    }
    // UTF-16 without a BOM: NUL in every other byte of ASCII text.
    let sample = &head[..head.len().min(4096) & !1];
    if sample.len() >= 4 {
        let pairs = sample.len() / 2;
        let even_nul = sample.iter().step_by(2).filter(|b| **b == 0).count();
        let odd_nul = sample
            .iter()
            .skip(1)
            .step_by(2)
            .filter(|b| **b == 0)
            .count();
        if odd_nul * 10 >= pairs * 7 && even_nul * 10 <= pairs {
            return Ok(Detected {
                encoding: UTF_16LE,
                bom: false,
                mixed: false,
            });
        }
        if even_nul * 10 >= pairs * 7 && odd_nul * 10 <= pairs {
            return Ok(Detected {
                encoding: UTF_16BE,
                bom: false,
                mixed: false,
            });
        }
    }
    check_not_binary(path, head)?;
    let scan = scan_utf8(path)?;
    if !scan.invalid {
        Ok(Detected {
            encoding: UTF_8,
            bom: false,
            mixed: false,
        })
    } else {
        Ok(Detected {
            encoding: WINDOWS_1252,
            bom: false,
            mixed: scan.multibyte,
        })
    }
}

/// Rejects bytes that no spreadsheet program writes into a text file: a NUL, or control bytes
/// in more than 3 % of the text. A few stray control characters (a vertical tab or form feed
/// pasted into a cell) are not binary data: their rows are marked invalid, the rest is read.
pub fn check_not_binary(path: &Path, head: &[u8]) -> Result<(), InputError> {
    let controls = head
        .iter()
        .filter(|b| **b < 0x20 && !matches!(**b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1a))
        .count();
    if head.contains(&0) || (controls >= 8 && controls * 100 > head.len() * 3) {
        return Err(InputError::NotText {
            path: path.to_path_buf(),
            detail: "it contains binary data (NUL or control bytes), not text".into(),
        });
    }
    Ok(())
}

/// What a streaming UTF-8 check of a whole file found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Scan {
    /// Some bytes are not valid UTF-8.
    pub invalid: bool,
    /// Some characters beyond ASCII are valid UTF-8.
    pub multibyte: bool,
}

/// Streams the file through a UTF-8 validator (constant memory), stopping once both an
/// invalid byte and a valid character beyond ASCII were seen.
pub fn scan_utf8(path: &Path) -> Result<Utf8Scan, InputError> {
    let mut f = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut carry = 0usize;
    let mut scan = Utf8Scan::default();
    loop {
        let n = f
            .read(&mut buf[carry..])
            .map_err(|e| InputError::io(path, e))?;
        let end = carry + n;
        if n == 0 {
            scan.invalid |= carry > 0;
            return Ok(scan);
        }
        let mut at = 0;
        carry = 0;
        while at < end {
            match std::str::from_utf8(&buf[at..end]) {
                Ok(s) => {
                    scan.multibyte |= !s.is_ascii();
                    break;
                }
                Err(e) => {
                    let valid = at + e.valid_up_to();
                    scan.multibyte |= !buf[at..valid].is_ascii();
                    match e.error_len() {
                        Some(len) => {
                            scan.invalid = true;
                            at = valid + len;
                        }
                        None => {
                            buf.copy_within(valid..end, 0);
                            carry = end - valid;
                            break;
                        }
                    }
                }
            }
            if scan.invalid && scan.multibyte {
                return Ok(scan);
            }
        }
    }
}

/// A `Read` that decodes any encoding_rs encoding to UTF-8 incrementally.
pub struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    outbuf: Vec<u8>,
    out_start: usize,
    out_end: usize,
    eof: bool,
    finished: bool,
}

impl<R: Read> DecodeReader<R> {
    pub fn new(inner: R, encoding: &'static Encoding) -> Self {
        DecodeReader {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            inbuf: vec![0; 64 * 1024],
            in_start: 0,
            in_end: 0,
            outbuf: vec![0; 64 * 1024 * 3 + 16],
            out_start: 0,
            out_end: 0,
            eof: false,
            finished: false,
        }
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.outbuf[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.inbuf)?;
                self.in_start = 0;
                self.in_end = n;
                if n == 0 {
                    self.eof = true;
                }
            }
            let (result, read, written, _) = self.decoder.decode_to_utf8(
                &self.inbuf[self.in_start..self.in_end],
                &mut self.outbuf,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            if self.eof
                && self.in_start == self.in_end
                && result == encoding_rs::CoderResult::InputEmpty
            {
                self.finished = true;
            }
        }
    }
}

/// Decodes the first bytes of a file for sniffing (lossy at the cut, which is fine).
pub fn decode_head(head: &[u8], encoding: &'static Encoding) -> String {
    let mut d = encoding.new_decoder_with_bom_removal();
    let cap = d
        .max_utf8_buffer_length(head.len())
        .unwrap_or(head.len() * 3 + 16);
    let mut s = String::with_capacity(cap);
    let _ = d.decode_to_string(head, &mut s, false);
    s
}

/// Parses `--delimiter`: `,` `;` `|` `tab` `\t` or any single ASCII character.
pub fn parse_delimiter(path: &Path, s: &str) -> Result<u8, InputError> {
    let d = match s.to_ascii_lowercase().as_str() {
        "tab" | "\\t" | "\t" | "tsv" => b'\t',
        "comma" => b',',
        "semicolon" => b';',
        "pipe" => b'|',
        "space" => b' ',
        other if other.len() == 1 && other.is_ascii() && other != "\"" => other.as_bytes()[0],
        _ => {
            return Err(InputError::BadOption {
                path: path.to_path_buf(),
                message: format!(
                    "cannot use '{s}' as a delimiter: use ',', ';', '|' or 'tab' (--delimiter tab)"
                ),
            })
        }
    };
    Ok(d)
}

/// Guesses the delimiter from the first lines: the candidate that appears the same number of
/// times in the most lines (quotes respected). `,` when nothing is found (a one-column list).
pub fn sniff_delimiter(text: &str) -> u8 {
    // Excel's own hint line: `sep=;`
    let first = text.lines().next().unwrap_or("").trim_end();
    if let Some(d) = first.strip_prefix("sep=") {
        if d.len() == 1 && d != "\"" {
            return d.as_bytes()[0];
        }
    }
    const CANDS: [u8; 4] = [b',', b';', b'\t', b'|'];
    // Split into logical lines, counting candidates outside quotes.
    let mut lines: Vec<[usize; 4]> = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut nonempty = false;
    for b in text.bytes() {
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                nonempty = true;
            }
            b'\n' if !in_quotes => {
                if nonempty {
                    lines.push(counts);
                }
                counts = [0; 4];
                nonempty = false;
                if lines.len() >= 30 {
                    break;
                }
            }
            b'\r' => {}
            _ => {
                if !in_quotes {
                    if let Some(i) = CANDS.iter().position(|c| *c == b) {
                        counts[i] += 1;
                    }
                }
                nonempty = true;
            }
        }
    }
    if nonempty && lines.len() < 30 {
        lines.push(counts);
    }
    let mut best: Option<(usize, usize, usize)> = None; // (lines with modal count, modal count, idx)
    for i in 0..CANDS.len() {
        let mut freq: std::collections::BTreeMap<usize, usize> = Default::default();
        for l in &lines {
            if l[i] > 0 {
                *freq.entry(l[i]).or_default() += 1;
            }
        }
        if let Some((count, n)) = freq.iter().max_by_key(|(c, n)| (**n, **c)) {
            let cand = (*n, *count, i);
            if best.is_none_or(|b| (cand.0, cand.1) > (b.0, b.1)) {
                best = Some(cand);
            }
        }
    }
    // A character in only a few of the lines is part of a value (`a@x.example; b@x.example`
    // in a one-column list, `=cmd|…`), not the file's delimiter: splitting every line at it
    // would cut those cells and keep only their first part.
    best.filter(|(n, _, _)| n * 2 >= lines.len())
        .map(|(_, _, i)| CANDS[i])
        .unwrap_or(b',')
}

/// Remembers where line breaks are in the bytes read ahead by the CSV parser, so a record's
/// starting line can be told from its starting byte (the parser's own line count lags behind
/// CRLF terminators and skipped blank lines). Memory: the line breaks in the parser's buffer.
pub struct LineTracker<R> {
    inner: R,
    offset: u64,
    /// (byte offset, is '\n') of every '\r' and '\n' read and not yet passed.
    marks: VecDeque<(u64, bool)>,
    lines_before: u64,
    /// Where the record being read starts: reading more than [`RECORD_MAX`] past it fails.
    record_start: u64,
    /// Set when that limit stopped the reading.
    pub too_long: bool,
}

/// Most bytes one CSV record may take (a cell holds at most 32,767 characters in Excel).
pub const RECORD_MAX: u64 = 4 << 20;

impl<R> LineTracker<R> {
    pub fn new(inner: R) -> Self {
        LineTracker {
            inner,
            offset: 0,
            marks: VecDeque::new(),
            lines_before: 0,
            record_start: 0,
            too_long: false,
        }
    }

    /// The next record starts at `at` (bytes from the start of the decoded text).
    pub fn record_starts(&mut self, at: u64) {
        self.record_start = at;
    }

    /// 1-based line of the first byte at or after `start` that is not a line break.
    pub fn line_at(&mut self, start: u64) -> u64 {
        while let Some(&(o, _)) = self.marks.front() {
            if o >= start {
                break;
            }
            self.pass_front();
        }
        let mut at = start;
        while let Some(&(o, _)) = self.marks.front() {
            if o != at {
                break;
            }
            self.pass_front();
            at += 1;
        }
        self.lines_before + 1
    }

    /// Passes the first mark: an LF ends a line, and so does a CR not followed at once by an
    /// LF (classic Mac line endings, as Excel for Mac's "CSV (Macintosh)" writes them; the
    /// CSV parser splits records there too). The byte after a mark the parser has passed was
    /// read already, so its mark, if any, is in the queue.
    fn pass_front(&mut self) {
        let Some((o, lf)) = self.marks.pop_front() else {
            return;
        };
        let crlf = !lf && matches!(self.marks.front(), Some(&(next, true)) if next == o + 1);
        if lf || !crlf {
            self.lines_before += 1;
        }
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.offset.saturating_sub(self.record_start) > RECORD_MAX {
            self.too_long = true;
            return Err(io::Error::other("a record longer than the limit"));
        }
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' || *b == b'\r' {
                self.marks.push_back((self.offset + i as u64, *b == b'\n'));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Rows whose bytes do not fit the encoding the file was read with, for a warning.
#[derive(Clone, Debug, Default)]
pub struct Misfits {
    /// The first few such rows.
    pub rows: Vec<u64>,
    pub count: u64,
}

/// Rows listed by number in a misfit warning; the rest are counted.
pub const MISFITS_LISTED: usize = 5;

/// How a record is checked against the encoding the file was read with.
pub enum FitCheck {
    /// Read as Windows-1252, but parts are UTF-8: a row fits UTF-8 when its bytes are valid
    /// UTF-8; those that are not are the odd ones.
    Cp1252Mixed(std::collections::HashMap<char, u8>),
    /// Read as UTF-8 (forced) although some bytes are not: rows holding U+FFFD.
    Utf8Replaced,
}

impl FitCheck {
    pub fn cp1252_mixed() -> FitCheck {
        let back = (0x80u8..=0xFF)
            .filter_map(|b| {
                let byte = [b];
                let s = WINDOWS_1252.decode_without_bom_handling(&byte).0;
                s.chars().next().map(|c| (c, b))
            })
            .collect();
        FitCheck::Cp1252Mixed(back)
    }

    /// Whether a record does not fit: see each variant.
    fn misfit(&self, rec: &csv::StringRecord) -> bool {
        match self {
            FitCheck::Utf8Replaced => rec.iter().any(|f| f.contains('\u{FFFD}')),
            FitCheck::Cp1252Mixed(back) => rec.iter().any(|f| {
                if f.is_ascii() {
                    return false;
                }
                let bytes: Vec<u8> = f
                    .chars()
                    .map(|c| {
                        if c.is_ascii() {
                            c as u8
                        } else {
                            back.get(&c).copied().unwrap_or(b'?')
                        }
                    })
                    .collect();
                std::str::from_utf8(&bytes).is_err()
            }),
        }
    }
}

/// Records of a text file, each with its row number as Excel shows it: one row per record, a
/// quoted cell spanning lines is one row, and each blank line is a row. Blank lines (which the
/// CSV parser skips) come back as empty rows so they can be counted.
pub struct CsvRows {
    rdr: csv::Reader<LineTracker<DecodeReader<BufReader<File>>>>,
    rec: csv::StringRecord,
    path: std::path::PathBuf,
    /// Row number the next record gets if no blank line comes first.
    expected_row: u64,
    /// Line breaks inside the quoted cells of the records read so far (lines that are not rows).
    inner_lines: u64,
    queue: VecDeque<Row>,
    done: bool,
    fit: Option<FitCheck>,
    misfits: std::sync::Arc<std::sync::Mutex<Misfits>>,
}

impl CsvRows {
    pub fn open(
        path: &Path,
        encoding: &'static Encoding,
        delimiter: u8,
    ) -> Result<Self, InputError> {
        let f = File::open(path).map_err(|e| InputError::io(path, e))?;
        let dec = DecodeReader::new(BufReader::with_capacity(64 * 1024, f), encoding);
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(64 * 1024)
            .from_reader(LineTracker::new(dec));
        Ok(CsvRows {
            rdr,
            rec: csv::StringRecord::new(),
            path: path.to_path_buf(),
            expected_row: 1,
            inner_lines: 0,
            queue: Default::default(),
            done: false,
            fit: None,
            misfits: Default::default(),
        })
    }

    /// Checks each record against the encoding; the rows that do not fit are collected in
    /// the returned list.
    pub fn check_fit(&mut self, fit: FitCheck) -> std::sync::Arc<std::sync::Mutex<Misfits>> {
        self.fit = Some(fit);
        self.misfits.clone()
    }
}

impl Iterator for CsvRows {
    type Item = Result<Row, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.queue.pop_front() {
            return Some(Ok(row));
        }
        if self.done {
            return None;
        }
        match self.rdr.read_record(&mut self.rec) {
            Ok(true) => {
                let start = self.rec.position().map(|p| p.byte()).unwrap_or(0);
                let end = self.rdr.position().byte();
                let tracker = self.rdr.get_mut();
                tracker.record_starts(end);
                let line = tracker.line_at(start);
                // Lines the parser skipped before this record were blank: each is a row.
                let row = line.saturating_sub(self.inner_lines).max(self.expected_row);
                for blank in self.expected_row..row {
                    self.queue.push_back((blank, Vec::new()));
                }
                if let Some(fit) = &self.fit {
                    if fit.misfit(&self.rec) {
                        if let Ok(mut m) = self.misfits.lock() {
                            m.count += 1;
                            if m.rows.len() < MISFITS_LISTED {
                                m.rows.push(row);
                            }
                        }
                    }
                }
                self.queue
                    .push_back((row, self.rec.iter().map(str::to_string).collect()));
                // A quoted field may span lines (LF, CRLF or a lone CR each end one): those
                // lines belong to this row.
                let inner_newlines = self
                    .rec
                    .iter()
                    .map(|f| {
                        let b = f.as_bytes();
                        (0..b.len())
                            .filter(|&i| {
                                b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n'))
                            })
                            .count() as u64
                    })
                    .sum::<u64>();
                self.inner_lines += inner_newlines;
                self.expected_row = row + 1;
                self.queue.pop_front().map(Ok)
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                if self.rdr.get_ref().too_long {
                    return Some(Err(super::guard::too_large(
                        &self.path,
                        format!(
                            "row {} is longer than {} (a cell holds at most 32,767 characters \
                             in Excel)",
                            self.expected_row,
                            super::guard::size_text(RECORD_MAX)
                        ),
                    )));
                }
                let line = e
                    .position()
                    .map(|p| p.line())
                    .unwrap_or(self.expected_row + self.inner_lines);
                Some(Err(InputError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("cannot read line {line}: {e}"),
                    hint: "check that it opens in Excel, then save it again as CSV UTF-8".into(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_delimiter_admins_use() {
        assert_eq!(sniff_delimiter("a,b,c\n1,2,3\n"), b',');
        assert_eq!(
            sniff_delimiter("Name;E-Mail\n\"Lee, Sam\";s@x.example\nZoë;z@x.example\n"),
            b';'
        );
        assert_eq!(sniff_delimiter("a\tb\n1\t2\n"), b'\t');
        assert_eq!(sniff_delimiter("a|b\n1|2\n"), b'|');
        assert_eq!(sniff_delimiter("sep=;\na,b;c\n"), b';');
        assert_eq!(
            sniff_delimiter(
                "version:v1.0\nName [displayName],User name [userPrincipalName]\nA,a@x.example\n"
            ),
            b','
        );
        assert_eq!(sniff_delimiter("a@x.example\nb@x.example\n"), b',');
        // A delimiter character inside a few values of a one-column list.
        assert_eq!(
            sniff_delimiter("Email\na@x.example\nb@x.example; c@x.example\nd@x.example\n"),
            b','
        );
        assert_eq!(
            sniff_delimiter("UPN\na@x.example\n=cmd|' /C calc'!A0\nb@x.example\n"),
            b','
        );
        assert_eq!(sniff_delimiter(""), b',');
    }

    #[test]
    fn decodes_utf16_in_small_pieces() {
        let text = "Email\r\nzoë@x.example\r\njürgen@x.example\r\n".repeat(5000);
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        // A reader that returns 3 bytes at a time splits code units and the BOM.
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut out = String::new();
        DecodeReader::new(Trickle(bytes, 0), UTF_16LE)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn line_tracker_finds_the_first_line_of_a_record() {
        let data = b"h\r\n\r\n\r\nx\r\n";
        let mut t = LineTracker::new(&data[..]);
        let mut sink = Vec::new();
        t.read_to_end(&mut sink).unwrap();
        assert_eq!(t.line_at(0), 1);
        // Record after "h\r" starts at the '\n' of line 1; the content is on line 4.
        assert_eq!(t.line_at(2), 4);
    }

    #[test]
    fn line_tracker_counts_classic_mac_line_endings() {
        // "CSV (Macintosh)": a lone CR ends each line.
        let data = b"h\ra\r\rb\r\nc\r";
        let mut t = LineTracker::new(&data[..]);
        let mut sink = Vec::new();
        t.read_to_end(&mut sink).unwrap();
        assert_eq!(t.line_at(0), 1);
        assert_eq!(t.line_at(2), 2); // a
        assert_eq!(t.line_at(5), 4); // b, after a blank line
        assert_eq!(t.line_at(8), 5); // c, after a CRLF
    }

    #[test]
    fn delimiter_option_words() {
        let p = Path::new("x.csv");
        assert_eq!(parse_delimiter(p, "tab").unwrap(), b'\t');
        assert_eq!(parse_delimiter(p, "\\t").unwrap(), b'\t');
        assert_eq!(parse_delimiter(p, ";").unwrap(), b';');
        assert_eq!(parse_delimiter(p, "|").unwrap(), b'|');
        assert!(parse_delimiter(p, "ab").is_err());
    }
}
