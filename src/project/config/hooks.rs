//! Hooks: SQL statements run on the build's session around a model
//! (`pre_hook`, `post_hook`) and around the whole run (`on-run-start`,
//! `on-run-end`), written as dbt writes them.

use std::path::Path;

use super::*;
use crate::diagnostic::{find_in_text, Location};

/// One hook: its SQL as written (a Jinja template, rendered when the model
/// is compiled) and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub sql: String,
    /// dbt's `transaction` flag, kept for the manifest; the session has no
    /// transactions, so it changes nothing.
    pub transaction: bool,
    #[serde(skip)]
    pub at: Option<Location>,
}

/// What a hook that does not read says.
pub const HOOK_SHAPE: &str = "a hook is a SQL statement, a list of them, or {sql: ..., transaction: ...}";

/// Hooks as dbt accepts them: one string, a list of strings, or items
/// `{sql: ..., transaction: ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookList(pub Vec<Hook>);

#[derive(Deserialize)]
#[serde(untagged)]
enum HookItem {
    Sql(String),
    Full {
        sql: String,
        #[serde(default = "default_transaction")]
        transaction: bool,
    },
}

fn default_transaction() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HookItems {
    One(HookItem),
    Many(Vec<HookItem>),
}

impl<'de> Deserialize<'de> for HookList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let items = Option::<HookItems>::deserialize(d).map_err(|_| D::Error::custom(HOOK_SHAPE))?;
        let items = match items {
            None => Vec::new(),
            Some(HookItems::One(item)) => vec![item],
            Some(HookItems::Many(items)) => items,
        };
        Ok(HookList(
            items
                .into_iter()
                .map(|item| match item {
                    HookItem::Sql(sql) => Hook { sql, transaction: true, at: None },
                    HookItem::Full { sql, transaction } => Hook { sql, transaction, at: None },
                })
                .collect(),
        ))
    }
}

impl HookList {
    /// Places each hook in the file it was written in: the line of its
    /// SQL's first line, else of `key`.
    pub fn locate(&mut self, path: &Path, text: &str, key: &str) {
        for hook in &mut self.0 {
            let first = hook.sql.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
            let found = (!first.is_empty()).then(|| find_in_text(text, first)).flatten();
            let (line, col) = found.or_else(|| find_in_text(text, key)).unwrap_or((0, 0));
            hook.at = Some(Location::at(path, line, col));
        }
    }
}

impl ConfigPatch {
    /// Places the patch's hooks in the file it was read from.
    pub fn locate_hooks(&mut self, path: &Path, text: &str) {
        if let Some(h) = self.pre_hook.as_mut() {
            h.locate(path, text, "pre");
        }
        if let Some(h) = self.post_hook.as_mut() {
            h.locate(path, text, "post");
        }
    }
}
