//! Reads a dbt project as it is: `dbt_project.yml` and the target of its
//! profile in `profiles.yml`, mapped onto `wh`'s own project settings. What
//! `wh` maps, ignores or cannot run is recorded for `wh debug --compat`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::config::{self, ProjectFile, TargetFile};
use super::{yaml, CompatKind, CompatNote, Overrides, ProjectError};
use crate::diagnostic::{did_you_mean, find_in_text, Location};

/// dbt's project file.
pub const DBT_PROJECT_FILE: &str = "dbt_project.yml";

/// `dbt_project.yml`. Every key dbt documents is accepted; a key it does not
/// know is an error with a did-you-mean hint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DbtProjectFile {
    name: String,
    #[serde(default)]
    version: Option<Json>,
    #[serde(default)]
    config_version: Option<Json>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default, alias = "source-paths")]
    model_paths: Option<Vec<String>>,
    #[serde(default, alias = "data-paths")]
    seed_paths: Option<Vec<String>>,
    #[serde(default)]
    test_paths: Option<Vec<String>>,
    #[serde(default)]
    macro_paths: Option<Vec<String>>,
    #[serde(default)]
    analysis_paths: Option<Vec<String>>,
    #[serde(default)]
    snapshot_paths: Option<Vec<String>>,
    #[serde(default)]
    docs_paths: Option<Vec<String>>,
    #[serde(default)]
    asset_paths: Option<Vec<String>>,
    #[serde(default)]
    target_path: Option<String>,
    #[serde(default)]
    log_path: Option<String>,
    #[serde(default)]
    packages_install_path: Option<String>,
    #[serde(default)]
    clean_targets: Option<Json>,
    #[serde(default)]
    require_dbt_version: Option<Json>,
    #[serde(default)]
    quoting: Option<Json>,
    #[serde(default)]
    on_run_start: Option<Json>,
    #[serde(default)]
    on_run_end: Option<Json>,
    #[serde(default)]
    dispatch: Option<Json>,
    #[serde(default)]
    flags: Option<Json>,
    #[serde(default)]
    query_comment: Option<Json>,
    #[serde(default)]
    restrict_access: Option<Json>,
    #[serde(default)]
    vars: Map<String, Json>,
    #[serde(default)]
    models: Map<String, Json>,
    #[serde(default)]
    seeds: Map<String, Json>,
    #[serde(default)]
    snapshots: Option<Json>,
    #[serde(default)]
    sources: Option<Json>,
    #[serde(default)]
    tests: Option<Json>,
    #[serde(default, rename = "data_tests")]
    data_tests: Option<Json>,
    #[serde(default, rename = "unit_tests")]
    unit_tests: Option<Json>,
    #[serde(default)]
    analyses: Option<Json>,
    #[serde(default)]
    metrics: Option<Json>,
    #[serde(default)]
    exposures: Option<Json>,
    #[serde(default)]
    semantic_models: Option<Json>,
    #[serde(default)]
    saved_queries: Option<Json>,
}

/// Loads `dbt_project.yml` and its profile's target as a `wh` project file,
/// with the notes for the compatibility report.
pub fn load(root: &Path, text: &str, overrides: &Overrides) -> Result<(ProjectFile, Vec<CompatNote>), ProjectError> {
    let file: DbtProjectFile = yaml::parse(text, Path::new(DBT_PROJECT_FILE))?;
    let mut notes = Vec::new();
    let at = |key: &str| {
        let (line, col) = find_in_text(text, &format!("{key}:")).unwrap_or((0, 0));
        Location::at(DBT_PROJECT_FILE, line, col)
    };
    let mut note = |kind, what: &str, detail: String, key: &str| {
        notes.push(CompatNote { kind, what: what.to_string(), detail, location: Some(at(key)) });
    };

    let ignored: [(&str, bool); 14] = [
        ("unit_tests", file.unit_tests.is_some()),
        ("analyses", file.analyses.is_some()),
        ("require-dbt-version", file.require_dbt_version.is_some()),
        ("clean-targets", file.clean_targets.is_some()),
        ("log-path", file.log_path.is_some()),
        ("asset-paths", file.asset_paths.is_some()),
        ("quoting", file.quoting.is_some()),
        ("flags", file.flags.is_some()),
        ("query-comment", file.query_comment.is_some()),
        ("restrict-access", file.restrict_access.is_some()),
        ("config-version", file.config_version.is_some()),
        ("sources", file.sources.is_some()),
        ("exposures", file.exposures.is_some()),
        ("tests", file.tests.is_some() || file.data_tests.is_some()),
    ];
    for (key, present) in ignored {
        if present {
            let detail = match key {
                "unit_tests" => "project-level unit test configs (tags, meta, enabled) are not applied; \
                                 set them in each unit test's config"
                    .to_string(),
                "tests" => "project-level test configs (severity, store_failures) are not applied; \
                            set severity on each test"
                    .to_string(),
                _ => "accepted; it has no effect on what wh builds".to_string(),
            };
            note(CompatKind::Ignored, key, detail, key);
        }
    }
    let unsupported: [(&str, bool, &str); 5] = [
        (
            "dispatch",
            file.dispatch.is_some(),
            "macro search orders are not read; adapter.dispatch looks for duckdb__ then default__",
        ),
        ("packages-install-path", file.packages_install_path.is_some(), "packages are not installed or read"),
        ("metrics", file.metrics.is_some(), "the semantic layer is not supported"),
        ("semantic-models", file.semantic_models.is_some(), "the semantic layer is not supported"),
        ("saved-queries", file.saved_queries.is_some(), "the semantic layer is not supported"),
    ];
    for (key, present, detail) in unsupported {
        if present {
            note(CompatKind::Unsupported, key, detail.to_string(), key);
        }
    }
    if file.snapshots.is_some() {
        note(
            CompatKind::Unsupported,
            "snapshots",
            "snapshot configs in dbt_project.yml are not applied; set them in each snapshot's config()".into(),
            "snapshots",
        );
    }
    if root.join("packages.yml").is_file() || root.join("dependencies.yml").is_file() {
        notes.push(CompatNote {
            kind: CompatKind::Unsupported,
            what: "packages".into(),
            detail: "packages (dbt deps) are not installed; macros from them are unknown".into(),
            location: Some(Location::file(if root.join("packages.yml").is_file() {
                "packages.yml"
            } else {
                "dependencies.yml"
            })),
        });
    }

    // dbt scopes vars by project name as well as globally.
    let mut vars = BTreeMap::new();
    for (key, value) in &file.vars {
        match value {
            Json::Object(scoped) if key == &file.name => {
                vars.extend(scoped.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {
                vars.insert(key.clone(), value.clone());
            }
        }
    }

    let (target, targets, profile_notes) = profile_targets(root, file.profile.as_deref(), overrides)?;
    notes.extend(profile_notes);

    let paths = |v: Option<Vec<String>>, default: &str| v.unwrap_or_else(|| vec![default.to_string()]);
    let project = ProjectFile {
        name: file.name,
        version: file.version,
        config_version: None,
        model_paths: paths(file.model_paths, "models"),
        macro_paths: paths(file.macro_paths, "macros"),
        test_paths: paths(file.test_paths, "tests"),
        snapshot_paths: paths(file.snapshot_paths, "snapshots"),
        seed_paths: paths(file.seed_paths, "seeds"),
        analysis_paths: paths(file.analysis_paths, "analyses"),
        docs_paths: file.docs_paths,
        target_path: file.target_path.unwrap_or_else(config::default_target_path),
        vars,
        models: file.models,
        seeds: file.seeds,
        target: Some(target),
        targets,
        checks: Default::default(),
        alerts: Default::default(),
        on_stale_source: Default::default(),
        classification: Default::default(),
        consent: None,
        forget: None,
        on_run_start: run_hooks(file.on_run_start, "on-run-start", at("on-run-start"))?,
        on_run_end: run_hooks(file.on_run_end, "on-run-end", at("on-run-end"))?,
    };
    Ok((project, notes))
}

/// Reads `on-run-start` or `on-run-end` as dbt writes them.
fn run_hooks(value: Option<Json>, key: &str, at: Location) -> Result<Option<config::HookList>, ProjectError> {
    value
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                ProjectError::invalid(
                    format!("invalid `{key}` in {DBT_PROJECT_FILE}: {e}"),
                    at.clone(),
                    Some(format!("{key}: [\"create table if not exists log (model varchar)\"]")),
                )
            })
        })
        .transpose()
}

/// One output of a profile.
#[derive(Debug, Deserialize)]
struct Output {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    threads: Option<usize>,
    #[serde(default)]
    external_root: Option<String>,
    #[serde(flatten)]
    other: Map<String, Json>,
}

/// Finds `profiles.yml`: `--profiles-dir` (or `DBT_PROFILES_DIR`), the
/// project folder, then `~/.dbt`.
fn profiles_file(root: &Path, overrides: &Overrides) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = &overrides.profiles_dir {
        dirs.push(d.clone());
    }
    dirs.push(root.to_path_buf());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".dbt"));
    }
    dirs.into_iter().map(|d| d.join("profiles.yml")).find(|p| p.is_file())
}

/// The chosen target's name, every DuckDB output as a target, and notes.
type ProfileTargets = (String, BTreeMap<String, TargetFile>, Vec<CompatNote>);

/// Resolves the profile's targets: the chosen target's name and every
/// DuckDB output as a `wh` target (a local warehouse folder).
fn profile_targets(root: &Path, profile: Option<&str>, overrides: &Overrides) -> Result<ProfileTargets, ProjectError> {
    let mut notes = Vec::new();
    let Some(path) = profiles_file(root, overrides) else {
        let target = overrides.target.clone().unwrap_or_else(|| "dev".into());
        notes.push(CompatNote {
            kind: CompatKind::Mapped,
            what: "profiles.yml".into(),
            detail: format!(
                "none found (--profiles-dir, the project folder, ~/.dbt): target `{target}` writes to ./warehouse"
            ),
            location: None,
        });
        let targets =
            BTreeMap::from([(target.clone(), TargetFile { warehouse: "warehouse".into(), ..Default::default() })]);
        return Ok((target, targets, notes));
    };
    let shown = path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| path.clone());
    let raw = std::fs::read_to_string(&path).map_err(|source| ProjectError::Io { path: path.clone(), source })?;
    let text = render_env_vars(&raw, &shown)?;
    let profiles: Map<String, Json> = yaml::parse(&text, &shown)?;
    let at = |needle: &str| {
        let (line, col) = find_in_text(&raw, needle).unwrap_or((0, 0));
        Location::at(&shown, line, col)
    };
    let names: Vec<&str> = profiles.keys().filter(|k| *k != "config").map(String::as_str).collect();
    let name = match profile {
        Some(p) => p.to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(ProjectError::Invalid {
                message: format!("{DBT_PROJECT_FILE} names no `profile`, and {} holds several", shown.display()),
                location: Location::file(DBT_PROJECT_FILE),
                hint: Some(format!("add `profile: NAME` to {DBT_PROJECT_FILE}; profiles: {}", names.join(", "))),
            })
        }
    };
    let Some(Json::Object(entry)) = profiles.get(&name) else {
        return Err(ProjectError::Invalid {
            message: format!("profile `{name}` is not in {}", shown.display()),
            location: Location::file(&shown),
            hint: did_you_mean(&name, names.iter().copied())
                .or_else(|| Some(format!("profiles there: {}", names.join(", ")))),
        });
    };
    let default_target = entry.get("target").and_then(Json::as_str).unwrap_or("dev").to_string();
    let target = overrides.target.clone().unwrap_or(default_target);
    let outputs = entry.get("outputs").and_then(Json::as_object).cloned().unwrap_or_default();
    if !outputs.contains_key(&target) {
        return Err(ProjectError::Invalid {
            message: format!("profile `{name}` has no output `{target}`"),
            location: at(&format!("{name}:")),
            hint: did_you_mean(&target, outputs.keys().map(String::as_str))
                .or_else(|| Some(format!("outputs: {}", outputs.keys().cloned().collect::<Vec<_>>().join(", ")))),
        });
    }
    let mut targets = BTreeMap::new();
    for (out_name, value) in &outputs {
        let output: Output = serde_json::from_value(value.clone()).map_err(|e| ProjectError::Invalid {
            message: format!("profile `{name}`, output `{out_name}`: {e}"),
            location: at(&format!("{out_name}:")),
            hint: Some("an output needs at least `type: duckdb`".into()),
        })?;
        if output.kind != "duckdb" {
            if out_name == &target {
                return Err(ProjectError::Invalid {
                    message: format!(
                        "profile `{name}`, target `{target}` uses the `{}` adapter, which wh does not support",
                        output.kind
                    ),
                    location: at(&format!("{out_name}:")),
                    hint: Some(
                        "wh runs DuckDB projects (type: duckdb) on DataFusion and writes Parquet; \
                         pick a duckdb target with --target"
                            .into(),
                    ),
                });
            }
            continue;
        }
        let (warehouse, how) = match (&output.external_root, output.path.as_deref()) {
            (Some(ext), _) => (ext.clone(), format!("external_root `{ext}`")),
            (None, None | Some(":memory:")) => ("warehouse".to_string(), "an in-memory database".to_string()),
            (None, Some(p)) => {
                let folder = Path::new(p).with_extension("");
                (folder.to_string_lossy().into_owned(), format!("path `{p}`"))
            }
        };
        if out_name == &target {
            notes.push(CompatNote {
                kind: CompatKind::Mapped,
                what: format!("profile {name}.{target}"),
                detail: format!("DuckDB {how} -> Parquet warehouse folder `{warehouse}/`"),
                location: Some(at(&format!("{out_name}:"))),
            });
            let unused: Vec<&String> =
                output.other.keys().filter(|k| !matches!(k.as_str(), "schema" | "database")).collect();
            if !unused.is_empty() {
                notes.push(CompatNote {
                    kind: CompatKind::Ignored,
                    what: format!("profile {name}.{target}"),
                    detail: format!(
                        "settings not used: {}",
                        unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    location: Some(at(&format!("{out_name}:"))),
                });
            }
        }
        let schema = output.other.get("schema").and_then(Json::as_str).map(str::to_string);
        targets
            .insert(out_name.clone(), TargetFile { warehouse, threads: output.threads, schema, ..Default::default() });
    }
    Ok((target, targets, notes))
}

/// Renders `{{ env_var('NAME', 'default') }}` in a profiles file, as dbt
/// does before reading it.
fn render_env_vars(text: &str, file: &Path) -> Result<String, ProjectError> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let mut env = minijinja::Environment::new();
    env.add_function("env_var", |name: String, default: Option<String>| match (std::env::var(&name), default) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(d)) => Ok(d),
        (Err(_), None) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("environment variable `{name}` is not set"),
        )),
    });
    env.render_str(text, ()).map_err(|e| ProjectError::Invalid {
        message: format!("cannot render {}: {}", file.display(), e.detail().unwrap_or("template error")),
        location: Location::at(file, e.line().unwrap_or(0), 0),
        hint: Some("export the variable or give env_var a default: env_var('NAME', 'value')".into()),
    })
}
