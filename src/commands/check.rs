//! `wh check`: project-metadata rules for governance, each `error`, `warn`
//! or `off` under `checks:` in `wh_project.yml`. Reads no data.

use std::process::ExitCode;

use serde_json::Value as Json;

use super::{compile_project, Settings};
use crate::diagnostic::{Diagnostic, Location};
use crate::error::Error;
use crate::project::config::CheckLevel;
use crate::quality::Subject;

/// One broken rule.
struct Finding {
    rule: &'static str,
    level: CheckLevel,
    problem: Diagnostic,
}

/// The findings so far; a rule at `off` adds none.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, rule: &'static str, level: CheckLevel, message: String, location: Option<Location>) {
        if level != CheckLevel::Off {
            self.0.push(Finding { rule, level, problem: Diagnostic { message, location, hint: None } });
        }
    }
}

/// Whether `meta.key` is non-blank text.
fn meta_text(meta: &serde_json::Map<String, Json>, key: &str) -> bool {
    meta.get(key).and_then(Json::as_str).is_some_and(|s| !s.trim().is_empty())
}

/// Runs the rules; exit code 1 if an error-level rule is broken.
pub async fn execute(settings: &Settings) -> Result<ExitCode, Error> {
    let (compiled, graph) = compile_project(settings)?;
    let rules = &settings.project.checks;
    let mut findings = Findings::default();
    for m in compiled.models.values().filter(|m| m.access == "public") {
        public_model_rules(&mut findings, rules, &compiled, m);
    }
    pii_rules(&mut findings, rules, &compiled);
    // Classes follow the column lineage (planned from source schemas):
    // a public model gets none unmasked.
    if rules.classified_column_public != CheckLevel::Off {
        let lineage = super::context::Context::open(settings, &compiled)?.lineage(&compiled, &graph).await;
        classified_rules(&mut findings, settings, &compiled, &graph, &lineage);
    }
    let findings = findings.0;
    let errors = findings.iter().filter(|f| f.level == CheckLevel::Error).count();
    for f in &findings {
        let level = if f.level == CheckLevel::Error { "error" } else { "warning" };
        eprint!("{}", f.problem.render(&format!("{level}[{}]", f.rule), &settings.project.root));
    }
    settings.log(format!(
        "Checked {} models and {} sources: {errors} error(s), {} warning(s)",
        compiled.models.len(),
        compiled.sources.len(),
        findings.len() - errors
    ));
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Where a model's findings point: its YAML entry, else its SQL file.
fn model_location(m: &crate::compile::CompiledModel) -> Option<Location> {
    m.props_at.clone().or_else(|| Some(Location::file(&m.path)))
}

/// A public model has an owner, a steward, a description and a tested key.
fn public_model_rules(
    findings: &mut Findings,
    rules: &crate::project::config::ChecksFile,
    compiled: &crate::compile::Compiled,
    m: &crate::compile::CompiledModel,
) {
    let at = model_location(m);
    let name = &m.name;
    if !meta_text(&m.config.meta, "owner") {
        let message = format!("public model `{name}` has no owner");
        findings.add("public-model-owner", rules.public_model_owner, message, at.clone());
    }
    if !meta_text(&m.config.meta, "steward") {
        let message = format!("public model `{name}` has no steward");
        findings.add("public-model-steward", rules.public_model_steward, message, at.clone());
    }
    if m.description.trim().is_empty() {
        let message = format!("public model `{name}` has no description");
        findings.add("public-model-description", rules.public_model_description, message, at.clone());
    }
    let key_tested = compiled.assertions.iter().any(|a| {
        a.subject == Subject::Model(name.clone())
            && matches!(a.kind.as_str(), "unique" | "unique_combination_of_columns")
    });
    if !key_tested {
        let message = format!("public model `{name}` has no `unique` assertion on its key");
        findings.add("mart-key-tested", rules.mart_key_tested, message, at);
    }
}

/// Every pii column of a model or source is described.
fn pii_rules(findings: &mut Findings, rules: &crate::project::config::ChecksFile, compiled: &crate::compile::Compiled) {
    let mut columns: Vec<(&str, &Vec<crate::project::config::ColumnDef>, Option<Location>)> = Vec::new();
    for m in compiled.models.values() {
        columns.push((m.name.as_str(), &m.columns, model_location(m)));
    }
    for (key, s) in &compiled.sources {
        columns.push((key.as_str(), &s.table.columns, Some(s.table.defined_at.clone())));
    }
    for (relation, cols, at) in columns {
        for c in cols.iter().filter(|c| c.meta.get("classification").and_then(Json::as_str) == Some("pii")) {
            if c.description.trim().is_empty() {
                let message = format!("pii column `{relation}.{}` has no description", c.name);
                findings.add("pii-column-described", rules.pii_column_described, message, at.clone());
            }
        }
    }
}

/// No public model publishes a classified column unmasked.
fn classified_rules(
    findings: &mut Findings,
    settings: &Settings,
    compiled: &crate::compile::Compiled,
    graph: &crate::graph::Graph,
    lineage: &crate::lineage::ProjectLineage,
) {
    let policies = &settings.project.classification;
    let classes = crate::policy::classify::propagate(compiled, graph, lineage, policies);
    let target = &settings.project.target.name;
    for e in crate::policy::classify::public_exposures(compiled, &classes, policies, target) {
        let problem = Diagnostic {
            message: format!(
                "public model `{}` would publish `{}` unmasked: column `{}` carries `{}` along {}",
                e.model,
                e.column,
                e.column,
                e.class,
                e.path.join(" <- ")
            ),
            location: model_location(&compiled.models[&e.model]),
            hint: Some(format!(
                "mask it (`classification: {{{}: {{masking: {{method: hash}}}}}}` in {}), derive it with a \
                 transformation the class lists in `removed_by` (meta: {{transformation: pseudonymised}}), or state \
                 why it may stay (meta: {{unmasked_reason: ...}})",
                e.class, settings.project.file_name
            )),
        };
        let level = settings.project.checks.classified_column_public;
        findings.0.push(Finding { rule: "classified-column-public", level, problem });
    }
}
