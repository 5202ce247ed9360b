//! Schema YAML files (`models/**/*.yml`): model, seed and snapshot
//! properties, sources, exposures, and their checks.

use super::*;
use crate::project::config::{SourceDef, SourceTableDef};

impl Project {
    pub(super) fn load_schema_file(&mut self, rel: &Path) -> Result<(), ProjectError> {
        let text = read(&self.root.join(rel))?;
        let file = parse_schema(&text, rel)?;
        self.add_schema_file(rel, &text, file)
    }

    /// Adds a parsed schema file's properties, sources and exposures.
    pub(super) fn add_schema_file(
        &mut self,
        rel: &Path,
        text: &str,
        file: Option<SchemaFile>,
    ) -> Result<(), ProjectError> {
        let Some(mut file) = file else { return Ok(()) };
        let names = name_positions(text);
        let at = |name: &str| {
            let (line, col) = names.get(name).copied().unwrap_or((0, 0));
            Location::at(rel, line, col)
        };
        self.note_unused_keys(&file, text, rel);
        for props in file.models.iter().chain(&file.seeds).chain(&file.snapshots) {
            if props.versions.is_some() {
                self.compat.push(CompatNote {
                    kind: CompatKind::Unsupported,
                    what: format!("versions of `{}`", props.name),
                    detail: "model versions are not supported: only the unversioned model is built".into(),
                    location: Some(at(&props.name)),
                });
            }
        }
        file.models.append(&mut file.seeds);
        file.models.append(&mut file.snapshots);
        for t in file.unit_tests {
            if t.config.enabled == Some(false) {
                continue;
            }
            let defined_at = at(&t.name);
            if let Some((_, prev)) = self.unit_tests.iter().find(|(u, _)| u.name == t.name && u.model == t.model) {
                let message =
                    format!("unit test `{}` of model `{}` is declared twice (first at {prev})", t.name, t.model);
                return Err(ProjectError::invalid(message, defined_at, None));
            }
            self.unit_tests.push((t, defined_at));
        }
        for e in file.exposures {
            let defined_at = at(&e.name);
            self.exposures.push((e, defined_at));
        }
        for mut props in file.models {
            // A schema file's vectors keep their growth room otherwise: a
            // large project holds every model's properties until it is
            // compiled.
            props.columns.shrink_to_fit();
            let defined_at = at(&props.name);
            if let Some(prev) = self.props.get(&props.name) {
                return Err(ProjectError::invalid(
                    format!("model `{}` is described twice (first at {})", props.name, prev.defined_at),
                    defined_at,
                    None,
                ));
            }
            let config = match &props.config {
                Some(map) => Some(self.yaml_config(map, &props.name, rel, text, &defined_at)?),
                None => None,
            };
            self.props.insert(props.name.clone(), DeclaredProps { props, config, defined_at });
        }
        for source in file.sources {
            for table in &source.tables {
                let key = format!("{}.{}", source.name, table.name);
                if self.sources.contains_key(&key) {
                    let message = format!("source table `{key}` is declared twice");
                    return Err(ProjectError::invalid(message, at(&table.name), None));
                }
                let table = source_table(&source, table.clone(), at(&table.name))?;
                self.sources.insert(key, table);
            }
        }
        Ok(())
    }

    /// Notes the top-level keys of dbt's schema files that wh reads and
    /// does not use, for the compatibility report.
    fn note_unused_keys(&mut self, file: &SchemaFile, text: &str, rel: &Path) {
        const SEMANTIC: &str = "the semantic layer is not supported";
        let unused = [
            ("macros", file.macros.is_some(), CompatKind::Ignored, "macro properties are documentation only"),
            ("analyses", file.analyses.is_some(), CompatKind::Ignored, "analyses are not run"),
            ("groups", file.groups.is_some(), CompatKind::Ignored, "groups are accepted and not enforced"),
            ("semantic_models", file.semantic_models.is_some(), CompatKind::Unsupported, SEMANTIC),
            ("metrics", file.metrics.is_some(), CompatKind::Unsupported, SEMANTIC),
            ("saved_queries", file.saved_queries.is_some(), CompatKind::Unsupported, SEMANTIC),
        ];
        for (key, present, kind, detail) in unused {
            if present {
                let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
                self.compat.push(CompatNote {
                    kind,
                    what: key.to_string(),
                    detail: detail.to_string(),
                    location: Some(Location::at(rel, line, col)),
                });
            }
        }
    }
}

/// Parses a schema file's text; an empty file is `None`.
pub(super) fn parse_schema(text: &str, rel: &Path) -> Result<Option<SchemaFile>, ProjectError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    yaml::parse(text, rel).map(Some)
}

/// One table of a `sources:` entry, with what it inherits from its source.
fn source_table(source: &SourceDef, table: SourceTableDef, defined_at: Location) -> Result<SourceTable, ProjectError> {
    let key = format!("{}.{}", source.name, table.name);
    let mut tests = table.tests.clone();
    tests.extend(table.data_tests.iter().cloned());
    let mut tags = source.tags.0.clone();
    tags.extend(table.tags.0.iter().cloned());
    let mut meta = source.meta.clone();
    meta.extend(table.meta.clone());
    let loaded_at_field = table.loaded_at_field.clone().or(source.loaded_at_field.clone());
    let location = table.location.clone().or_else(|| external_location(source, &table));
    let freshness = table.freshness.clone().or(source.freshness.clone());
    if freshness.is_some() && loaded_at_field.is_none() {
        return Err(ProjectError::invalid(
            format!("source `{key}` declares `freshness` but no `loaded_at_field`"),
            defined_at,
            Some("add `loaded_at_field: COLUMN` (the time each row was loaded) to the table or source".into()),
        ));
    }
    let format = table.format.or(source.format).unwrap_or_else(|| format_of(location.as_deref()));
    Ok(SourceTable {
        source: source.name.clone(),
        name: table.name,
        description: table.description,
        source_description: source.description.clone(),
        location_template: location,
        format,
        has_header: table.has_header.unwrap_or(true),
        delimiter: table.delimiter.unwrap_or(','),
        meta,
        tags,
        columns: table.columns,
        tests,
        loaded_at_field,
        freshness,
        column_types: Map::new(),
        defined_at,
    })
}

/// dbt-duckdb reads files through `external_location`, in the table's or
/// the source's meta or config, `{name}` standing for the table (or its
/// identifier).
fn external_location(source: &SourceDef, table: &SourceTableDef) -> Option<String> {
    let external = |m: Option<&Map<String, Json>>| {
        m.and_then(|m| m.get("external_location")).and_then(Json::as_str).map(str::to_string)
    };
    external(Some(&table.meta))
        .or_else(|| external(table.config.as_ref()))
        .or_else(|| external(Some(&source.meta)))
        .or_else(|| external(source.config.as_ref()))
        .map(|l| {
            let ident = table.identifier.clone().unwrap_or_else(|| table.name.clone());
            l.replace("{name}", &ident).replace("{identifier}", &ident)
        })
}

impl Project {
    /// Reads a `config:` block of a YAML file; dbt keys wh does not use are
    /// noted for the compatibility report.
    pub(super) fn yaml_config(
        &mut self,
        map: &Map<String, Json>,
        model: &str,
        rel: &Path,
        text: &str,
        defined_at: &Location,
    ) -> Result<ConfigPatch, ProjectError> {
        let mut plain = map.clone();
        let notes = note_dbt_keys(
            &mut plain,
            |key| format!("{model}: config.{key}"),
            |key| {
                let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
                Location::at(rel, line, col)
            },
        );
        self.compat.extend(notes);
        let mut patch: ConfigPatch = serde_json::from_value(Json::Object(plain)).map_err(|err| {
            let message = err.to_string();
            let bad = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_string);
            let location = bad
                .as_ref()
                .and_then(|b| find_in_text(text, &format!("{b}:")))
                .map(|(line, col)| Location::at(rel, line, col))
                .unwrap_or_else(|| defined_at.clone());
            let hint = bad.as_ref().and_then(|b| did_you_mean(b, CONFIG_KEYS.iter().copied()));
            ProjectError::invalid(format!("invalid config of `{model}`: {message}"), location, hint)
        })?;
        patch.locate_hooks(rel, text);
        Ok(patch)
    }

    /// Rejects YAML that describes models that do not exist, and exposures
    /// that read unknown models.
    pub(super) fn check_props(&self) -> Result<(), ProjectError> {
        for (e, at) in &self.exposures {
            for d in &e.depends_on {
                let model = exposure_ref(d).ok_or_else(|| {
                    ProjectError::invalid(
                        format!("exposure `{}`: `{d}` is not a ref('model')", e.name),
                        at.clone(),
                        Some("write depends_on: [\"ref('mart_customer_rfm')\"]".into()),
                    )
                })?;
                if !self.models.contains_key(&model) {
                    return Err(ProjectError::invalid(
                        format!("exposure `{}` reads unknown model `{model}`", e.name),
                        at.clone(),
                        did_you_mean(&model, self.models.keys().map(String::as_str)),
                    ));
                }
            }
        }
        for (name, declared) in &self.props {
            if !self.models.contains_key(name) {
                return Err(ProjectError::invalid(
                    format!("YAML describes model `{name}`, but there is no `{name}.sql` under the model paths"),
                    declared.defined_at.clone(),
                    did_you_mean(name, self.models.keys().map(String::as_str)),
                ));
            }
        }
        Ok(())
    }
}
