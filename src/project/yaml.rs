//! The one door to YAML: every project file is parsed here, into typed
//! structs, and every parse error leaves with its file, line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::ProjectError;
use crate::diagnostic::{did_you_mean, Location};

/// Parses YAML `text` (read from `file`, as shown to the user) into `T`.
pub fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ProjectError> {
    serde_yaml::from_str(text).map_err(|err| {
        let location = match err.location() {
            Some(loc) => Location::at(file, loc.line(), loc.column()),
            None => Location::file(file),
        };
        let message = strip_position(&err.to_string());
        let hint = unknown_field_hint(&message);
        ProjectError::Yaml { message, location, hint }
    })
}

/// Parses a YAML flow mapping given on the command line, such as
/// `--vars '{raw_root: /data}'`.
pub fn parse_inline<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, ProjectError> {
    serde_yaml::from_str(text).map_err(|err| ProjectError::Usage {
        message: format!("{what} is not valid YAML: {}", strip_position(&err.to_string())),
        hint: Some("write a YAML mapping, for example --vars '{raw_root: data/raw, as_of_date: 2024-01-01}'".into()),
    })
}

/// Removes serde_yaml's trailing ` at line L column C`: the location is shown
/// on its own line.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a hint.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    let (name, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(name, candidates.iter().copied())
        .or_else(|| (!candidates.is_empty()).then(|| format!("allowed keys here: {}", candidates.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        materialized: Option<String>,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn unknown_key_gets_line_and_hint() {
        let err = parse::<Demo>("tags: [a]\nmaterialzed: table\n", Path::new("x.yml")).unwrap_err();
        let ProjectError::Yaml { location, hint, message } = err else { panic!("wrong variant") };
        assert_eq!(location.line, 2);
        assert!(message.contains("unknown field `materialzed`"), "{message}");
        assert_eq!(hint.as_deref(), Some("did you mean `materialized`?"));
    }
}
