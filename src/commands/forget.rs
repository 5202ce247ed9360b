//! `wh forget --identifier email:x@y.z`: the right to be forgotten. Finds
//! the person (every profile carrying the identifier) in the project's
//! identifiers model, adds all of their identifiers, hashed, to the
//! warehouse's forgotten list, rebuilds (every model with identifier
//! columns leaves out rows holding a forgotten identifier, and what is
//! derived from them goes with them), and writes an audit record of what
//! was removed and when. The record holds hashes and counts, never the
//! identifiers themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;

use super::{compile_project, run, Settings};
use crate::artifacts::Invocation;
use crate::compile::Compiled;
use crate::diagnostic::Location;
use crate::error::Error;
use crate::exec::Engine;
use crate::policy::{self, FORGOTTEN_FILE};
use crate::project::ProjectError;
use crate::storage::publish;
use crate::storage::Warehouse;

/// Folder of the audit records in the warehouse.
pub const AUDIT_DIR: &str = "_wh/forget";

/// Forgets the people carrying `identifiers` (`type:value`); exit code 1
/// when nobody carries them or the rebuild fails.
pub async fn execute(mut settings: Settings, identifiers: &[String], reason: Option<&str>) -> Result<ExitCode, Error> {
    let project_file = settings.project.file_name;
    let Some(policy) = settings.project.forget.clone() else {
        return Err(Error::Project(ProjectError::Invalid {
            message: format!("`wh forget` needs `forget:` in {project_file}"),
            location: Location::file(project_file),
            hint: Some(
                "name the model bridging people to identifiers: forget: {model: profile_identifiers, \
                 profile: profile_id, type: identifier_type, value: identifier_value}"
                    .into(),
            ),
        }));
    };
    let wanted: Vec<(String, String)> = identifiers.iter().map(|i| parse_identifier(i)).collect::<Result<_, _>>()?;
    let (compiled, graph) = compile_project(&settings)?;
    if !compiled.models.contains_key(&policy.model) {
        let text = std::fs::read_to_string(settings.project.root.join(project_file)).unwrap_or_default();
        let (line, col) = crate::diagnostic::find_in_text(&text, "forget:").unwrap_or((0, 0));
        return Err(Error::Project(ProjectError::Invalid {
            message: format!("`forget.model` names `{}`, which is not a model", policy.model),
            location: Location::at(project_file, line, col),
            hint: crate::diagnostic::did_you_mean(&policy.model, compiled.models.keys().map(String::as_str)),
        }));
    }
    // The rebuild: models with identifier columns and what derives from them.
    let carriers: BTreeSet<String> = compiled
        .models
        .values()
        .filter(|m| !policy::identifier_columns(m).is_empty())
        .flat_map(|m| std::iter::once(m.name.clone()).chain(graph.descendants(&m.name, None)))
        .collect();
    let ctx = super::context::Context::reachable(&settings, &compiled).await?;
    let warehouse = &ctx.warehouse;
    let inv = Invocation::new("forget", &settings.project);
    let requested_at = chrono::Utc::now();
    // No build may run while the list changes; the rebuild takes the lock
    // again (a build started in between applies the new list too).
    let lock = run::take_lock(&settings, warehouse, &inv).await?;
    let found = find_and_add(&settings, &compiled, &carriers, &ctx, &policy, &wanted).await;
    lock.release().await;
    let Some((profiles, hashed, before)) = found? else {
        return Ok(ExitCode::from(1));
    };
    settings.log(format!(
        "Forgetting {} profile(s) with {} identifier(s); rebuilding the models that carry them",
        profiles.len(),
        hashed.len()
    ));
    settings.select = crate::graph::selector::parse(&carriers.iter().cloned().collect::<Vec<_>>())?;
    settings.exclude = crate::graph::selector::Selection(Vec::new());
    let code = run::execute(&settings, "build", true, None, false).await?;
    let engine = ctx.engine(Some(1)).await?;
    let after = row_counts(&engine, warehouse, &compiled, &carriers).await;
    let removed: BTreeMap<&String, u64> =
        before.iter().filter_map(|(m, n)| after.get(m).filter(|a| **a < *n).map(|a| (m, n - a))).collect();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _) in &hashed {
        *by_type.entry(t.as_str()).or_default() += 1;
    }
    let status = if code == ExitCode::SUCCESS { "completed" } else { "rebuild_failed" };
    let record = json!({
        "request_id": inv.id,
        "requested_at": requested_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "completed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "requested_by": format!("{}@{}", inv.user, inv.host),
        "reason": reason,
        "target": settings.project.target.name,
        "requested": wanted.iter().map(|(t, v)| json!({"type": t, "sha256": crate::state::digest(v.as_bytes())})).collect::<Vec<_>>(),
        "profiles": profiles.len(),
        "identifiers_forgotten": by_type,
        "rows_removed": removed,
        "status": status,
    });
    let audit = format!("{AUDIT_DIR}/{}.json", inv.id);
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    warehouse.put(&audit, bytes).await.map_err(|source| Error::Io { path: audit.clone().into(), source })?;
    settings.log(format!(
        "Forgot {} profile(s): {} row(s) removed from {} model(s); audit record {}",
        profiles.len(),
        removed.values().sum::<u64>(),
        removed.len(),
        warehouse.location(&audit)
    ));
    Ok(code)
}

/// What was found and added: the profiles, their hashed identifiers, and
/// the row counts before the rebuild. None when nobody carries the
/// identifiers.
type Found = (BTreeSet<String>, BTreeSet<(String, String)>, BTreeMap<String, u64>);

/// Looks the people up and adds their hashed identifiers to the forgotten
/// list, under the warehouse lock.
async fn find_and_add(
    settings: &Settings,
    compiled: &Compiled,
    carriers: &BTreeSet<String>,
    ctx: &super::context::Context,
    policy: &crate::project::config::ForgetPolicy,
    wanted: &[(String, String)],
) -> Result<Option<Found>, Error> {
    let model = &compiled.models[&policy.model];
    let (engine, warehouse) = (ctx.engine(Some(1)).await?, &ctx.warehouse);
    let rel = model.output_path().unwrap_or_default();
    if !warehouse.exists(&rel).await.unwrap_or(false) {
        return Err(Error::Usage {
            message: format!("`{}` is not built: nobody can be looked up", policy.model),
            hint: Some("run `wh build` first".into()),
        });
    }
    engine.register_published(&policy.model, &warehouse.location(&rel)).await?;

    // The people: every profile carrying one of the identifiers.
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let (table, profile, kind, value) = (q(&policy.model), q(&policy.profile), q(&policy.kind), q(&policy.value));
    let mut profiles = BTreeSet::new();
    for (t, v) in wanted {
        let sql = format!(
            "select distinct cast({profile} as varchar) from {table} where {kind} = '{}' and {value} = '{}'",
            t.replace('\'', "''"),
            v.replace('\'', "''")
        );
        profiles.extend(strings(&engine, &sql).await?.into_iter().map(|r| r[0].clone()));
    }
    if profiles.is_empty() {
        settings.log(format!(
            "Nobody carries {}: nothing was forgotten",
            wanted.iter().map(|(t, _)| format!("the given {t}")).collect::<Vec<_>>().join(", ")
        ));
        return Ok(None);
    }
    let list = profiles.iter().map(|p| format!("'{}'", p.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "select distinct cast({kind} as varchar), cast({value} as varchar) from {table} \
         where cast({profile} as varchar) in ({list}) and {value} is not null"
    );
    let all: Vec<(String, String)> =
        strings(&engine, &sql).await?.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let hashed: BTreeSet<(String, String)> =
        all.iter().map(|(t, v)| (t.clone(), crate::state::digest(v.as_bytes()))).collect();

    let before = row_counts(&engine, warehouse, compiled, carriers).await;
    add_forgotten(&engine, warehouse, &hashed).await?;
    Ok(Some((profiles, hashed, before)))
}

/// Splits `type:value`; emails are compared trimmed and in lower case, as
/// staging normalises them.
fn parse_identifier(text: &str) -> Result<(String, String), Error> {
    let Some((kind, value)) = text.split_once(':').filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty()) else {
        return Err(Error::Usage {
            message: format!("--identifier `{text}` is not TYPE:VALUE"),
            hint: Some("for example --identifier email:ana@example.com or --identifier phone:+34612000001".into()),
        });
    };
    let kind = kind.trim().to_lowercase();
    let value = if kind == "email" { value.trim().to_lowercase() } else { value.trim().to_string() };
    Ok((kind, value))
}

/// Runs a query whose columns are text; rows of strings.
async fn strings(engine: &Engine, sql: &str) -> Result<Vec<Vec<String>>, Error> {
    let (_, batches) = engine.query(sql).await?;
    let mut out = Vec::new();
    for b in &batches {
        let text: Vec<_> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let cols: Vec<&StringArray> = text.iter().map(|c| c.as_string::<i32>()).collect();
        for i in 0..b.num_rows() {
            out.push(cols.iter().map(|c| if c.is_null(i) { String::new() } else { c.value(i).to_string() }).collect());
        }
    }
    Ok(out)
}

/// Rows of the published single-file tables among `models`.
async fn row_counts(
    engine: &Engine,
    warehouse: &Warehouse,
    compiled: &Compiled,
    models: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in models.iter().filter_map(|name| compiled.models.get(name)) {
        let Some(rel) = m.output_path().filter(|_| !m.is_delta() && !m.is_partitioned_parquet()) else { continue };
        if !warehouse.exists(&rel).await.unwrap_or(false) {
            continue;
        }
        let name = format!("__wh_count_{}", m.name);
        if engine.register_published(&name, &warehouse.location(&rel)).await.is_ok() {
            if let Ok(n) = engine.row_count(&name).await {
                out.insert(m.name.clone(), n as u64);
            }
        }
    }
    out
}

/// Adds hashed identifiers to the warehouse's forgotten list (published
/// whole, as every table).
async fn add_forgotten(engine: &Engine, warehouse: &Warehouse, new: &BTreeSet<(String, String)>) -> Result<(), Error> {
    let mut all = new.clone();
    if warehouse.exists(FORGOTTEN_FILE).await.unwrap_or(false) {
        engine.register_published("__wh_forgotten_old", &warehouse.location(FORGOTTEN_FILE)).await?;
        let old = strings(engine, "select identifier_type, identifier_hash from __wh_forgotten_old").await?;
        all.extend(old.into_iter().map(|r| (r[0].clone(), r[1].clone())));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("identifier_type", DataType::Utf8, false),
        Field::new("identifier_hash", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(all.iter().map(|(t, _)| t.as_str()))),
            Arc::new(StringArray::from_iter_values(all.iter().map(|(_, h)| h.as_str()))),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    let io = |source| Error::Io { path: FORGOTTEN_FILE.into(), source };
    let staged = publish::stage(&[batch], &schema, &warehouse.staging_path(FORGOTTEN_FILE)).map_err(io)?;
    warehouse.publish(&staged, FORGOTTEN_FILE).await.map_err(io)
}
