//! Checksums of compiled models: their SQL with comments and formatting
//! ignored, and their config. The manifest records them and
//! `state:modified` compares them with the previous manifest's.

use sha2::{Digest, Sha256};

use super::CompiledModel;

/// Returns `sql` without comments and with whitespace collapsed, string
/// literals and quoted names kept as they are.
pub fn normalize_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut space = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            space = true;
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            space = true;
            continue;
        }
        if c.is_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c == '\'' || c == '"' {
            // Copy the quoted text as is, with doubled quotes inside.
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        out.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Returns a model's definition checksum for the manifest: its compiled
/// SQL (comments and formatting ignored; `run_started_at` by name, not
/// value) and config. `state:modified` compares it with the previous
/// manifest's.
pub fn checksum(model: &CompiledModel) -> String {
    let mut h = Sha256::new();
    h.update(normalize_sql(&model.definition).as_bytes());
    if let Some(incremental) = &model.incremental_sql {
        h.update(format!("\nincremental {}", normalize_sql(incremental)));
    }
    h.update(serde_json::to_string(&model.config).unwrap_or_default().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_formatting_do_not_count() {
        let a = "select a,  b -- the key\nfrom t /* all rows */ where s = 'x  -- y'";
        let b = "select a, b\n\n   from t where s = 'x  -- y'";
        assert_eq!(normalize_sql(a), normalize_sql(b));
        assert_eq!(normalize_sql(a), "select a, b from t where s = 'x  -- y'");
        assert_ne!(normalize_sql("select 'a  b'"), normalize_sql("select 'a b'"));
        assert_eq!(normalize_sql("select 'it''s'  ,1"), "select 'it''s' ,1");
    }
}
