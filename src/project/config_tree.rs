//! The project file's config trees (`models:`, `seeds:`): flattened into
//! per-folder config patches, with dbt's spellings noted.

use super::*;

/// A config tree of the project file (`models:` or `seeds:`) and how to
/// read it.
pub(super) struct ConfigTree<'a> {
    pub(super) file_name: &'static str,
    pub(super) text: &'a str,
    pub(super) project: &'a str,
    /// dbt's reading: config keys may be written without `+`, and trees of
    /// other packages are noted, not refused.
    pub(super) dbt: bool,
}

impl ConfigTree<'_> {
    /// Flattens a tree into (folder path, patch), shallowest first.
    pub(super) fn flatten(
        &self,
        kind: &str,
        tree: &Map<String, Json>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<Vec<(Vec<String>, ConfigPatch)>, ProjectError> {
        let file_name = self.file_name;
        let mut out = Vec::new();
        let mut top = Map::new();
        for (key, value) in tree {
            if key.starts_with('+') || (self.dbt && is_config_key(key)) {
                top.insert(key.clone(), value.clone());
            } else if key == self.project {
                self.walk(kind, value, &mut Vec::new(), &mut out, notes)?;
            } else if self.dbt {
                notes.push(CompatNote {
                    kind: CompatKind::Ignored,
                    what: format!("{kind}.{key}"),
                    detail: format!("configs for the package `{key}`, which is not installed"),
                    location: Some(self.at(&format!("{key}:"))),
                });
            } else {
                return Err(ProjectError::invalid(
                    format!("`{kind}:` in {file_name} starts with `{key}`, which is not the project name `{}`", self.project),
                    self.at(&format!("{key}:")),
                    Some(format!(
                        "nest folder configs under the project name, e.g. `{kind}: {{{}: {{staging: {{+materialized: table}}}}}}`",
                        self.project
                    )),
                ));
            }
        }
        if !top.is_empty() {
            out.push((Vec::new(), self.patch(kind, &[], top, notes)?));
        }
        out.sort_by_key(|(path, _)| path.len());
        Ok(out)
    }

    pub(super) fn at(&self, needle: &str) -> Location {
        let (line, col) = find_in_text(self.text, needle).unwrap_or((0, 0));
        Location::at(self.file_name, line, col)
    }

    pub(super) fn walk(
        &self,
        kind: &str,
        node: &Json,
        path: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, ConfigPatch)>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<(), ProjectError> {
        let Json::Object(map) = node else {
            if node.is_null() {
                return Ok(());
            }
            return Err(ProjectError::invalid(
                format!("`{kind}:` entry `{}` must be a mapping of `+config` keys and sub-folders", path.join(".")),
                path.last().map(|k| self.at(&format!("{k}:"))).unwrap_or_else(|| Location::file(self.file_name)),
                None,
            ));
        };
        let is_config = |k: &str| k.starts_with('+') || (self.dbt && is_config_key(k));
        let configs: Map<String, Json> =
            map.iter().filter(|(k, _)| is_config(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !configs.is_empty() {
            out.push((path.clone(), self.patch(kind, path, configs, notes)?));
        }
        for (key, child) in map.iter().filter(|(k, _)| !is_config(k)) {
            if CONFIG_KEYS.contains(&key.as_str()) {
                return Err(ProjectError::invalid(
                    format!("`{key}` in `{kind}:` is read as a folder name"),
                    self.at(&format!("{key}:")),
                    Some(format!("configs in {} take a `+` prefix: `+{key}`", self.file_name)),
                ));
            }
            path.push(key.clone());
            self.walk(kind, child, path, out, notes)?;
            path.pop();
        }
        Ok(())
    }

    pub(super) fn patch(
        &self,
        kind: &str,
        path: &[String],
        configs: Map<String, Json>,
        notes: &mut Vec<CompatNote>,
    ) -> Result<ConfigPatch, ProjectError> {
        let mut plain: Map<String, Json> =
            configs.iter().map(|(k, v)| (k.trim_start_matches('+').to_string(), v.clone())).collect();
        let prefix: Vec<String> = std::iter::once(kind.to_string()).chain(path.iter().cloned()).collect();
        let prefix = prefix.join(".");
        notes.extend(note_dbt_keys(&mut plain, |key| format!("{prefix}.+{key}"), |key| self.at(&format!("{key}:"))));
        let mut patch: ConfigPatch = serde_json::from_value(Json::Object(plain)).map_err(|err| {
            let message = err.to_string();
            let bad = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string);
            // A hook that does not read is placed at its key.
            let hook_key =
                message.contains(config::HOOK_SHAPE).then(|| configs.keys().find(|k| k.contains("hook"))).flatten();
            let location = bad
                .as_deref()
                .or(hook_key.map(String::as_str))
                .map(|b| self.at(b))
                .unwrap_or_else(|| Location::file(self.file_name));
            let hint = bad
                .as_ref()
                .and_then(|b| did_you_mean(b, CONFIG_KEYS.iter().copied()))
                .map(|h| h.replacen('`', "`+", 1));
            ProjectError::invalid(format!("invalid config in `{kind}:`: {message}"), location, hint)
        })?;
        patch.locate_hooks(Path::new(self.file_name), self.text);
        Ok(patch)
    }
}

/// Tells whether a key of a dbt config tree, written without `+`, is a
/// config rather than a folder.
pub(super) fn is_config_key(key: &str) -> bool {
    CONFIG_KEYS.contains(&key) || config::DBT_UNUSED_KEYS.contains(&key) || config::DBT_UNSUPPORTED_KEYS.contains(&key)
}

/// Removes the dbt config keys `wh` does not use from a config map (keys
/// without `+`), noting each: `what` names it, `at` places it.
pub fn note_dbt_keys(
    map: &mut Map<String, Json>,
    what: impl Fn(&str) -> String,
    at: impl Fn(&str) -> Location,
) -> Vec<CompatNote> {
    config::take_dbt_only_keys(map)
        .into_iter()
        .map(|key| CompatNote {
            kind: if config::DBT_UNSUPPORTED_KEYS.contains(&key.as_str()) {
                CompatKind::Unsupported
            } else {
                CompatKind::Ignored
            },
            what: what(&key),
            detail: dbt_key_detail(&key),
            location: Some(at(&key)),
        })
        .collect()
}

/// What the compatibility report says of a dbt config key `wh` does not use.
pub fn dbt_key_detail(key: &str) -> String {
    match key {
        "incremental_predicates" => "not applied: the merge considers every published row".into(),
        "schema" | "database" => "accepted; tables land at <folder>/<model>.parquet whatever the schema".into(),
        "alias" => "accepted; the table keeps the model's name".into(),
        "persist_docs" | "docs" => "accepted; descriptions are in the manifest and the docs site".into(),
        _ => "accepted; it has no effect on what wh builds".into(),
    }
}
