//! What a file is, by its content (magic bytes), whatever its extension says.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::workbook::Kind;
use super::InputError;

/// How much of the start of a file is read for detection and sniffing.
pub const HEAD_BYTES: usize = 64 * 1024;

pub enum Content {
    Workbook(Kind),
    Text,
}

/// Reads the first [`HEAD_BYTES`] of a file.
pub fn read_head(path: &Path) -> Result<Vec<u8>, InputError> {
    let f = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    f.take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| InputError::io(path, e))?;
    Ok(head)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn not_text(path: &Path, detail: &str) -> InputError {
    InputError::NotText {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// The first and last 256 KB of a file: enough to see a zip's entry names (its central
/// directory is at the end) without reading a big workbook twice.
fn ends(path: &Path, head: &[u8]) -> Result<Vec<u8>, InputError> {
    use std::io::{Seek, SeekFrom};
    const TAIL: u64 = 256 * 1024;
    if head.len() < HEAD_BYTES {
        return Ok(head.to_vec());
    }
    let mut f = File::open(path).map_err(|e| InputError::io(path, e))?;
    let len = f.metadata().map_err(|e| InputError::io(path, e))?.len();
    let mut out = head.to_vec();
    let from = len.saturating_sub(TAIL).max(head.len() as u64);
    f.seek(SeekFrom::Start(from))
        .map_err(|e| InputError::io(path, e))?;
    f.take(TAIL)
        .read_to_end(&mut out)
        .map_err(|e| InputError::io(path, e))?;
    Ok(out)
}

/// Reads the whole file when the head is not enough (CFB directory entries can be anywhere).
fn whole(path: &Path, head: &[u8]) -> Result<Vec<u8>, InputError> {
    if head.len() < HEAD_BYTES {
        return Ok(head.to_vec());
    }
    std::fs::read(path).map_err(|e| InputError::io(path, e))
}

/// Decides what a file is from its first bytes.
pub fn sniff(path: &Path, head: &[u8]) -> Result<Content, InputError> {
    if head.starts_with(b"PK\x03\x04") {
        // ODS: first entry "mimetype" stored uncompressed.
        if contains(
            &head[..head.len().min(200)],
            b"application/vnd.oasis.opendocument.spreadsheet",
        ) {
            return Ok(Content::Workbook(Kind::Ods));
        }
        if contains(
            &head[..head.len().min(200)],
            b"application/vnd.oasis.opendocument",
        ) {
            return Err(not_text(
                path,
                "an OpenDocument file that is not a spreadsheet (a text document?)",
            ));
        }
        let all = ends(path, head)?;
        if contains(&all, b"xl/workbook.bin") {
            return Ok(Content::Workbook(Kind::Xlsb));
        }
        if contains(&all, b"word/document.xml") {
            return Err(not_text(path, "a Word document (.docx), not a spreadsheet"));
        }
        if contains(&all, b"ppt/presentation.xml") {
            return Err(not_text(
                path,
                "a PowerPoint file (.pptx), not a spreadsheet",
            ));
        }
        if contains(&all, b"content.xml") && !contains(&all, b"[Content_Types].xml") {
            return Ok(Content::Workbook(Kind::Ods));
        }
        // XLSX/XLSM, or a zip we will try as one (calamine gives the details).
        return Ok(Content::Workbook(Kind::Xlsx));
    }
    if head.starts_with(b"PK\x05\x06") || head.starts_with(b"PK\x07\x08") {
        return Err(InputError::Corrupt {
            path: path.to_path_buf(),
            detail: "it is an empty or broken zip archive, not a workbook".into(),
            hint: "export the user list again from its source".into(),
        });
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        // Read whole below: never more than an XLS may be.
        super::guard::check_xls_size(path)?;
        let all = whole(path, head)?;
        if contains(&all, &utf16le("EncryptedPackage"))
            || contains(&all, &utf16le("EncryptionInfo"))
        {
            return Err(InputError::PasswordProtected {
                path: path.to_path_buf(),
            });
        }
        if contains(&all, &utf16le("WordDocument")) {
            return Err(not_text(path, "a Word document (.doc), not a spreadsheet"));
        }
        return Ok(Content::Workbook(Kind::Xls));
    }
    let magic: &[(&[u8], &str)] = &[
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "a gzip archive: extract it first"),
        (b"Rar!", "a RAR archive: extract it first"),
        (b"7z\xBC\xAF", "a 7-Zip archive: extract it first"),
        (b"{\\rtf", "an RTF document"),
        (b"MZ", "a program"),
        (b"\x7FELF", "a program"),
        (b"SQLite format", "an SQLite database"),
    ];
    for (m, what) in magic {
        if head.starts_with(m) {
            return Err(not_text(path, what));
        }
    }
    let start: String = String::from_utf8_lossy(&head[..head.len().min(1024)])
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || start.starts_with("<table")
    {
        return Err(not_text(
            path,
            "a web page (HTML) saved with a spreadsheet name, as some portals export \"Excel\" files",
        ));
    }
    if start.starts_with("<?xml") && contains(head, b"urn:schemas-microsoft-com:office:spreadsheet")
    {
        return Err(not_text(
            path,
            "an Excel 2003 XML spreadsheet, which is not supported",
        ));
    }
    Ok(Content::Text)
}
