//! Places in project files and the rendering of user-facing errors with them.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a project file, shown as `--> file:line:col` with the line
/// and a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Path as the user knows it (relative to the project where possible).
    pub file: PathBuf,
    /// 1-based line; 0 when only the file is known.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
}

impl Location {
    /// Creates a location for a whole file.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location { file: file.into(), line: 0, column: 0 }
    }

    /// Creates a location for a line (and column, 0 if unknown) of a file.
    pub fn at(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location { file: file.into(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

/// One problem as the user reads it: what is wrong, where, and what to do.
/// Every error, failed model and broken rule becomes one, and
/// [`Diagnostic::render`] is the one place that formats them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// `heading: message`, the place with its source line, and the hint;
    /// `root` is the project folder relative locations are read from.
    pub fn render(&self, heading: &str, root: &Path) -> String {
        let mut out = format!("{heading}: {}\n", self.message);
        if let Some(loc) = &self.location {
            out.push_str(&render_location(loc, root));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  hint: {hint}\n"));
        }
        out
    }
}

/// Renders `--> file:line:col`, the source line and a caret, reading the line
/// from `root.join(file)`; falls back to the arrow line alone.
pub fn render_location(loc: &Location, root: &Path) -> String {
    let mut out = format!("  --> {loc}\n");
    if loc.line == 0 {
        return out;
    }
    let path = if loc.file.is_absolute() { loc.file.clone() } else { root.join(&loc.file) };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return out;
    };
    let Some(src) = text.lines().nth(loc.line - 1) else {
        return out;
    };
    let gutter = loc.line.to_string().len();
    out.push_str(&format!("{:gutter$} |\n", ""));
    out.push_str(&format!("{} | {}\n", loc.line, src.trim_end()));
    if loc.column > 0 {
        let pad: String = src.chars().take(loc.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        out.push_str(&format!("{:gutter$} | {pad}^\n", ""));
    }
    out
}

/// The closest of `candidates` to `name` (Jaro-Winkler over 0.8), if any.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for cand in candidates {
        let score = strsim::jaro_winkler(name, cand);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Suggests the closest of `candidates` to `name`, for `did you mean` hints.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Finds the first line (1-based) and column of `needle` in `text`, to place
/// errors found after parsing (serde values carry no positions).
pub fn find_in_text(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| line.find(needle).map(|c| (i + 1, line[..c].chars().count() + 1)))
}
