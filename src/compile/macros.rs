//! The project's macros as the manifest lists them: each `{% macro %}`
//! block of the macro files (a `{% test %}` block as dbt's `test_<name>`
//! macro), with its file and text.

use std::path::PathBuf;

use crate::project::MacroFile;

/// One macro defined in the project.
#[derive(Debug, Clone)]
pub struct MacroDef {
    pub name: String,
    /// The macro file, relative to the project.
    pub path: PathBuf,
    /// The block, from `{% macro` to `{% endmacro %}`.
    pub sql: String,
}

/// Every macro of `files`, by name; of two with one name, the first file's.
pub fn definitions(files: &[MacroFile]) -> Vec<MacroDef> {
    let mut out: Vec<MacroDef> = Vec::new();
    for file in files {
        let text = super::test_blocks_as_macros(&file.text);
        let mut rest = text.as_str();
        while let Some((name, block, after)) = next_block(rest) {
            out.push(MacroDef { name: name.to_string(), path: file.path.clone(), sql: block.to_string() });
            rest = after;
        }
    }
    // A stable sort keeps the first file's macro first among equal names.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|later, first| later.name == first.name);
    out
}

/// The next `{% macro name(...) %}...{% endmacro %}` block of `text`: its
/// name, the block, and the text after it.
fn next_block(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    loop {
        let start = from + text[from..].find("{%")?;
        let tag = text[start + 2..].trim_start_matches(['-', '+']).trim_start();
        if let Some(after) = tag.strip_prefix("macro").filter(|a| a.starts_with(char::is_whitespace)) {
            let after = after.trim_start();
            let name = &after[..after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len())];
            let end = start + text[start..].find("endmacro")?;
            let close = end + text[end..].find("%}")? + 2;
            return Some((name, &text[start..close], &text[close..]));
        }
        from = start + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_with_their_names_and_text() {
        let text = "{# c #}\n{%- macro cents(col, d=2) -%}\n  ({{ col }} / 100)\n{%- endmacro %}\n\
                    {% set x = 1 %}{% test positive(model, column_name) %}select 1{% endtest %}\n\
                    {%macro  b()%}{%endmacro%}";
        let files = [MacroFile { path: "macros/m.sql".into(), text: text.into() }];
        let defs = definitions(&files);
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["b", "cents", "test_positive"]);
        assert_eq!(defs[1].sql, "{%- macro cents(col, d=2) -%}\n  ({{ col }} / 100)\n{%- endmacro %}");
        assert_eq!(defs[0].sql, "{%macro  b()%}{%endmacro%}");
        assert!(defs[2].sql.ends_with("select 1{% endmacro %}"), "{}", defs[2].sql);
    }
}
