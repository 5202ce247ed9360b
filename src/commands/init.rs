//! `wh init DIR`: scaffold a minimal working project (one source, two
//! models, a schema file) that `wh build` runs as it is.

use std::path::Path;
use std::process::ExitCode;

use crate::error::Error;

/// Creates the project in `dir`, which must not exist or be empty.
pub fn execute(dir: &Path) -> Result<ExitCode, Error> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::Usage {
            message: format!("`{}` already exists and is not empty", dir.display()),
            hint: Some("choose a new folder name".into()),
        });
    }
    let raw = dir.file_name().and_then(|n| n.to_str()).unwrap_or("my_project");
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    for (path, text) in files(&name) {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
        }
        std::fs::write(&full, text).map_err(|source| Error::Io { path: full.clone(), source })?;
    }
    println!("Created project `{name}` in {}", dir.display());
    println!("Next: cd {} && wh build && wh show people_by_city", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn files(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "wh_project.yml",
            format!(
                "name: {name}\nmodel-paths: [models]\nmacro-paths: [macros]\n\nvars:\n  raw_root: data/raw\n\n\
                 models:\n  {name}:\n    staging:\n      +materialized: view\n    marts:\n      +materialized: table\n\n\
                 target: dev\ntargets:\n  dev:\n    warehouse: warehouse\n"
            ),
        ),
        (
            "sources.yml",
            "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: people\n        format: csv\n        \
             location: \"{{ var('raw_root') }}/people.csv\"\n"
                .to_string(),
        ),
        ("data/raw/people.csv", "id,name,city\n1, Ada ,London\n2,Grace,New York\n3,Linus,Helsinki\n4,Margaret,London\n".to_string()),
        (
            "models/staging/stg_people.sql",
            "select cast(id as bigint) as person_id,\n       trim(name) as person_name,\n       trim(city) as city\n\
             from {{ source('raw', 'people') }}\n"
                .to_string(),
        ),
        (
            "models/marts/people_by_city.sql",
            "select city, count(*) as people\nfrom {{ ref('stg_people') }}\ngroup by city\norder by city\n".to_string(),
        ),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: stg_people\n    description: People, trimmed and typed.\n  \
             - name: people_by_city\n    description: How many people live in each city.\n    columns:\n      \
             - name: city\n        description: City name.\n      - name: people\n        description: Number of people.\n"
                .to_string(),
        ),
        (".gitignore", "/target/\n/warehouse/\n".to_string()),
    ]
}
