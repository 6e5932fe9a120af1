//! The labels file of bulk enrollment (`faceprint index DIR --labels FILE.csv`).
//!
//! Format (UTF-8 CSV, read by the `csv` crate):
//! - one row per photo: `file,label`, exactly two fields, surrounding spaces trimmed; a field
//!   with a comma is quoted (`"Smith, Ann"`);
//! - `file` is a path relative to DIR (an absolute path is accepted only inside DIR); a path
//!   that leaves DIR (`..`, another absolute path) is a bad row;
//! - `label` is the identity name: not empty, at most 256 characters, no control characters,
//!   not starting with `id:`;
//! - an optional first row `file,label` is a header; empty lines and lines starting with `#`
//!   are skipped; a row is one line (a quoted field cannot span lines).
//!
//! A bad row is reported with its line number and skipped; the other rows are used.

use std::path::{Component, Path, PathBuf};

use super::{check_name, GalleryError};

/// One usable row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledFile {
    /// The photo: DIR joined with the row's path.
    pub path: PathBuf,
    /// The identity name.
    pub label: String,
    /// Line number in the labels file (1-based).
    pub line: u64,
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line number in the labels file (1-based).
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// The rows of a labels file.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Usable rows, in file order.
    pub files: Vec<LabelledFile>,
    /// Skipped rows, in file order.
    pub bad_rows: Vec<BadRow>,
}

/// `path` relative to `dir` when it stays inside it (lexically: no `..`, and an absolute path
/// must start with `dir`); `None` when it leaves `dir`.
fn inside(dir: &Path, path: &Path) -> Option<PathBuf> {
    let rel = if path.is_absolute() { path.strip_prefix(dir).ok()? } else { path };
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then(|| dir.join(out))
}

/// Reads the labels file `csv` for the photo folder `dir` (format in the module docs).
///
/// # Errors
/// [`GalleryError::LabelsFile`] when the file cannot be opened or read at all (a directory, a
/// missing file). Problems of single rows are returned in [`Labels::bad_rows`].
pub fn read_labels_csv(dir: &Path, csv_path: &Path) -> Result<Labels, GalleryError> {
    let file_err = |detail: String| GalleryError::LabelsFile { path: csv_path.to_path_buf(), detail };
    if csv_path.is_dir() {
        return Err(file_err("is a directory, not a CSV file".into()));
    }
    let bytes = std::fs::read(csv_path).map_err(|e| file_err(e.to_string()))?;
    let mut out = Labels::default();
    let mut first = true;
    // One row per line, so that every row has its exact line number.
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(raw);
        let rec = match rdr.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                out.bad_rows.push(BadRow { line, message: format!("cannot be read: {e}") });
                continue;
            }
            None => continue,
        };
        let is_first = std::mem::replace(&mut first, false);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() != 2 {
            out.bad_rows.push(BadRow { line, message: format!("{} field(s); expected 2: `file,label`", rec.len()) });
            continue;
        }
        let (file, label) = (&rec[0], &rec[1]);
        if is_first && file.eq_ignore_ascii_case("file") && label.eq_ignore_ascii_case("label") {
            continue;
        }
        if file.is_empty() {
            out.bad_rows.push(BadRow { line, message: "empty file path".into() });
            continue;
        }
        if label.is_empty() {
            out.bad_rows.push(BadRow { line, message: format!("{file}: empty label") });
            continue;
        }
        let label = match check_name(label) {
            Ok(l) => l,
            Err(e) => {
                out.bad_rows.push(BadRow { line, message: format!("{file}: {e}") });
                continue;
            }
        };
        match inside(dir, Path::new(file)) {
            Some(path) => out.files.push(LabelledFile { path, label, line }),
            None => out.bad_rows.push(BadRow { line, message: format!("{file}: outside the photo folder {} (paths are relative to it)", dir.display()) }),
        }
    }
    Ok(out)
}
