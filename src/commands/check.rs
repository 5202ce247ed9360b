//! `wh check`: project-metadata rules for governance, each `error`, `warn`
//! or `off` under `checks:` in `wh_project.yml`. Reads no data.

use std::process::ExitCode;

use serde_json::Value as Json;

use super::{compile_project, Settings};
use crate::diagnostic::{render_location, Location};
use crate::error::Error;
use crate::project::config::CheckLevel;
use crate::quality::Subject;

/// One broken rule.
struct Finding {
    rule: &'static str,
    level: CheckLevel,
    message: String,
    location: Option<Location>,
    hint: Option<String>,
}

/// Runs the rules; exit code 1 if an error-level rule is broken.
pub async fn execute(settings: &Settings) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let rules = settings.project.checks;
    let mut findings = Vec::new();
    let mut add = |rule: &'static str, level: CheckLevel, message: String, location: Option<Location>| {
        if level != CheckLevel::Off {
            findings.push(Finding { rule, level, message, location, hint: None });
        }
    };
    let meta_text = |meta: &serde_json::Map<String, Json>, key: &str| {
        meta.get(key).and_then(Json::as_str).is_some_and(|s| !s.trim().is_empty())
    };
    // Every relation's columns, for the pii rule: (name, columns, where).
    let mut columns: Vec<(&str, &Vec<crate::project::config::ColumnDef>, Option<Location>)> = Vec::new();
    for m in compiled.models.values() {
        let at = m.props_at.clone().or_else(|| Some(Location::file(&m.path)));
        if m.access == "public" {
            if !meta_text(&m.config.meta, "owner") {
                add(
                    "public-model-owner",
                    rules.public_model_owner,
                    format!("public model `{}` has no owner", m.name),
                    at.clone(),
                );
            }
            if !meta_text(&m.config.meta, "steward") {
                add(
                    "public-model-steward",
                    rules.public_model_steward,
                    format!("public model `{}` has no steward", m.name),
                    at.clone(),
                );
            }
            if m.description.trim().is_empty() {
                add(
                    "public-model-description",
                    rules.public_model_description,
                    format!("public model `{}` has no description", m.name),
                    at.clone(),
                );
            }
            let key_tested = compiled.assertions.iter().any(|a| {
                a.subject == Subject::Model(m.name.clone())
                    && matches!(a.kind.as_str(), "unique" | "unique_combination_of_columns")
            });
            if !key_tested {
                add(
                    "mart-key-tested",
                    rules.mart_key_tested,
                    format!("public model `{}` has no `unique` assertion on its key", m.name),
                    at.clone(),
                );
            }
        }
        columns.push((m.name.as_str(), &m.columns, at));
    }
    for (key, s) in &compiled.sources {
        columns.push((key.as_str(), &s.table.columns, Some(s.table.defined_at.clone())));
    }
    for (relation, cols, at) in columns {
        for c in cols.iter().filter(|c| c.meta.get("classification").and_then(Json::as_str) == Some("pii")) {
            if c.description.trim().is_empty() {
                add(
                    "pii-column-described",
                    rules.pii_column_described,
                    format!("pii column `{relation}.{}` has no description", c.name),
                    at.clone(),
                );
            }
        }
    }
    // Classes follow the column lineage (planned from source schemas):
    // a public model gets none unmasked.
    if rules.classified_column_public != CheckLevel::Off {
        let lineage = settings.lineage(&compiled, &graph, &settings.warehouse()?).await?;
        let policies = &settings.project.classification;
        let classes = crate::policy::classify::propagate(&compiled, &graph, &lineage, policies);
        let target = &settings.project.target.name;
        for e in crate::policy::classify::public_exposures(&compiled, &classes, policies, target) {
            let at = compiled.models[&e.model]
                .props_at
                .clone()
                .or_else(|| Some(Location::file(&compiled.models[&e.model].path)));
            findings.push(Finding {
                rule: "classified-column-public",
                level: rules.classified_column_public,
                message: format!(
                    "public model `{}` would publish `{}` unmasked: column `{}` carries `{}` along {}",
                    e.model,
                    e.column,
                    e.column,
                    e.class,
                    e.path.join(" <- ")
                ),
                location: at,
                hint: Some(format!(
                    "mask it (`classification: {{{}: {{masking: {{method: hash}}}}}}` in {}), derive it with a \
                     transformation the class lists in `removed_by` (meta: {{transformation: pseudonymised}}), or state \
                     why it may stay (meta: {{unmasked_reason: ...}})",
                    e.class, settings.project.file_name
                )),
            });
        }
    }
    let errors = findings.iter().filter(|f| f.level == CheckLevel::Error).count();
    for f in &findings {
        let level = if f.level == CheckLevel::Error { "error" } else { "warning" };
        let mut block = format!("{level}[{}]: {}\n", f.rule, f.message);
        if let Some(loc) = &f.location {
            block.push_str(&render_location(loc, &settings.project.root));
        }
        if let Some(hint) = &f.hint {
            block.push_str(&format!("  hint: {hint}\n"));
        }
        eprint!("{block}");
    }
    settings.log(format!(
        "Checked {} models and {} sources: {errors} error(s), {} warning(s)",
        compiled.models.len(),
        compiled.sources.len(),
        findings.len() - errors
    ));
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
