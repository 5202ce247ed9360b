//! The target a build runs against: the project file's `targets:` entry
//! chosen by `--target` (or the file's default), its engine and job
//! timeout, with the command line's overrides applied.

use super::*;

pub(super) fn resolve_target(
    file: &ProjectFile,
    file_name: &'static str,
    text: &str,
    overrides: &Overrides,
) -> Result<Target, ProjectError> {
    let name = overrides.target.clone().or_else(|| file.target.clone()).unwrap_or_else(|| "dev".into());
    let Some(t) = file.targets.get(&name).cloned().or_else(|| {
        (file.targets.is_empty() && name == "dev")
            .then(|| config::TargetFile { warehouse: "warehouse".to_string(), ..Default::default() })
    }) else {
        let (line, col) = find_in_text(text, "targets:").unwrap_or((0, 0));
        return Err(ProjectError::invalid(
            format!("target `{name}` is not declared in `targets:`"),
            Location::at(file_name, line, col),
            did_you_mean(&name, file.targets.keys().map(String::as_str)).or_else(|| {
                Some(format!("declared targets: {}", file.targets.keys().cloned().collect::<Vec<_>>().join(", ")))
            }),
        ));
    };
    let threads = overrides.threads.or(t.threads).unwrap_or(4).max(1);
    // The target's own line under `targets:`, else the file.
    let declared = text.lines().enumerate().skip_while(|(_, l)| !l.starts_with("targets:")).find_map(|(i, l)| {
        let key = l.trim_start();
        key.strip_prefix(name.as_str()).filter(|r| r.starts_with(':')).map(|_| (i + 1, l.len() - key.len() + 1))
    });
    let defined_at = match declared {
        Some((line, col)) => Location::at(file_name, line, col),
        None => Location::file(file_name),
    };
    let schema = t.schema.clone().unwrap_or_else(|| "main".into());
    let engine = engine_choice(overrides, &t, &defined_at)?;
    Ok(Target { name, warehouse: t.warehouse, threads, schema, s3: t.s3, engine, defined_at })
}

/// Resolves the engine from `--engine`/`--scheduler` over the target's
/// `engine:`/`scheduler:`.
pub(super) fn engine_choice(
    overrides: &Overrides,
    target: &config::TargetFile,
    defined_at: &Location,
) -> Result<EngineChoice, ProjectError> {
    let scheduler = overrides.scheduler.clone().or(target.scheduler.clone());
    match overrides.engine.or(target.engine).unwrap_or(config::EngineName::Local) {
        config::EngineName::Local if scheduler.is_some() => Err(ProjectError::invalid(
            "a scheduler is given, but the engine is `local`".to_string(),
            defined_at.clone(),
            Some("run on the cluster with --engine ballista (or `engine: ballista` in the target)".into()),
        )),
        config::EngineName::Local => Ok(EngineChoice::Local),
        config::EngineName::Ballista => {
            if let Some(url) = &scheduler {
                let parsed = url::Url::parse(url).ok().filter(|u| u.scheme() == "df" && u.host_str().is_some());
                if parsed.is_none() {
                    return Err(ProjectError::invalid(
                        format!("scheduler `{url}` is not a Ballista scheduler address"),
                        defined_at.clone(),
                        Some("write it as df://host:port, e.g. df://localhost:50050".into()),
                    ));
                }
            }
            let job_timeout = job_timeout(overrides, target, defined_at)?;
            Ok(EngineChoice::Ballista { scheduler, job_timeout })
        }
    }
}

/// `--job-timeout`, else the target's `job_timeout:`, else the default.
pub(super) fn job_timeout(
    overrides: &Overrides,
    target: &config::TargetFile,
    defined_at: &Location,
) -> Result<std::time::Duration, ProjectError> {
    let Some(text) = overrides.job_timeout.as_ref().or(target.job_timeout.as_ref()) else {
        return Ok(config::DEFAULT_JOB_TIMEOUT);
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(ProjectError::invalid(
            format!("job timeout `{text}` is not a duration"),
            defined_at.clone(),
            Some("write it as a number with a unit, e.g. 90s, 20m or 2h".into()),
        )),
    }
}
