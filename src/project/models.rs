//! Model and snapshot files: SQL under the model paths, `{% snapshot %}`
//! blocks under the snapshot paths.

use super::*;

impl Project {
    pub(super) fn load_model_path(&mut self, model_path: &str) -> Result<(), ProjectError> {
        let files = files_under(&self.root, model_path, &["sql", "yml", "yaml"])?;
        // Reading and parsing are the cost of a large project's load: done on
        // every core, then added in file order.
        let root = &self.root;
        let loaded = par_map(&files, |rel| {
            let text = read(&root.join(rel))?;
            let schema = match rel.extension().is_some_and(|e| e != "sql") {
                true => Some(schema::parse_schema(&text, rel)?),
                false => None,
            };
            Ok::<_, ProjectError>((text, schema))
        });
        for (rel, result) in files.into_iter().zip(loaded) {
            let (text, schema) = result?;
            if let Some(schema) = schema {
                self.add_schema_file(&rel, &text, schema)?;
                continue;
            }
            let name = rel.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let folder: Vec<String> = rel
                .strip_prefix(model_path)
                .unwrap_or(&rel)
                .parent()
                .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            self.add_model(ModelFile { name, path: rel, folder, text, snapshot: false, seed: false })?;
        }
        Ok(())
    }

    pub(super) fn add_model(&mut self, file: ModelFile) -> Result<(), ProjectError> {
        if let Some(other) = self.models.get(&file.name) {
            return Err(ProjectError::invalid(
                format!(
                    "two models are named `{}`: `{}` and `{}`",
                    file.name,
                    other.path.display(),
                    file.path.display()
                ),
                Location::file(&file.path),
                Some("model and snapshot names must be unique across the project; rename one".into()),
            ));
        }
        self.models.insert(file.name.clone(), file);
        Ok(())
    }

    /// Loads the `{% snapshot name %} ... {% endsnapshot %}` blocks of the
    /// `.sql` files under a snapshot path (YAML there describes them).
    pub(super) fn load_snapshot_path(&mut self, snapshot_path: &str) -> Result<(), ProjectError> {
        for rel in files_under(&self.root, snapshot_path, &["sql", "yml", "yaml"])? {
            if rel.extension().is_some_and(|e| e != "sql") {
                self.load_schema_file(&rel)?;
                continue;
            }
            let text = read(&self.root.join(&rel))?;
            let blocks = snapshot_blocks(&text).map_err(|(message, line)| {
                ProjectError::invalid(
                    message,
                    Location::at(&rel, line, 1),
                    Some("write `{% snapshot name %} select ... {% endsnapshot %}`".into()),
                )
            })?;
            if blocks.is_empty() {
                return Err(ProjectError::invalid(
                    format!("`{}` holds no `{{% snapshot %}}` block", rel.display()),
                    Location::file(&rel),
                    Some(
                        "a file under a snapshot path holds `{% snapshot name %} ... {% endsnapshot %}` blocks".into(),
                    ),
                ));
            }
            for (name, text) in blocks {
                let folder = vec!["snapshots".to_string()];
                self.add_model(ModelFile { name, path: rel.clone(), folder, text, snapshot: true, seed: false })?;
            }
        }
        Ok(())
    }
}

/// Splits a snapshot file into its blocks: each block's name and the file's
/// text with everything but the block's body blanked, lines kept. Errors
/// give a message and a 1-based line.
pub(super) fn snapshot_blocks(text: &str) -> Result<Vec<(String, String)>, (String, usize)> {
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let blank = |s: &str| s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect::<String>();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(open) = find_tag(text, pos, "snapshot") {
        let (tag_start, tag_end, args) = open;
        let name = args.trim().to_string();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((
                format!("`{{% snapshot {name} %}}` needs a name of letters, digits and `_`"),
                line_of(tag_start),
            ));
        }
        let Some((close_start, close_end, _)) = find_tag(text, tag_end, "endsnapshot") else {
            return Err((format!("snapshot `{name}` has no `{{% endsnapshot %}}`"), line_of(tag_start)));
        };
        let body = format!("{}{}{}", blank(&text[..tag_end]), &text[tag_end..close_start], blank(&text[close_start..]));
        out.push((name, body));
        pos = close_end;
    }
    Ok(out)
}

/// Finds the next `{% keyword args %}` tag (with optional `-` trims) at or
/// after `from`: its start, end and arguments.
pub(super) fn find_tag(text: &str, from: usize, keyword: &str) -> Option<(usize, usize, String)> {
    let mut at = from;
    while let Some(i) = text[at..].find("{%") {
        let start = at + i;
        let end = start + text[start..].find("%}")? + 2;
        let inner = text[start + 2..end - 2].trim_matches('-').trim();
        let mut words = inner.splitn(2, char::is_whitespace);
        if words.next() == Some(keyword) {
            return Some((start, end, words.next().unwrap_or("").to_string()));
        }
        at = end;
    }
    None
}
