//! Templates have no way out: the usual escape attempts (reading files,
//! reaching Python-style internals, running a process) end in a template
//! error or render nothing of the kind; dbt's secret variables never reach
//! SQL, `target/` or a message.

use crate::common::*;

/// Each attempt as a model, with what must not appear in the compiled
/// SQL or the output.
const ATTEMPTS: &[&str] = &[
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% import '/etc/passwd' as p %}select 1",
    "{% extends '/etc/hostname' %}",
    "select '{{ ''.__class__.__mro__ }}'",
    "select '{{ cycler.__init__.__globals__ }}'",
    "select '{{ self._TemplateReference__context }}'",
    "select '{{ config.__class__.__init__.__globals__.os.popen('touch PWNED').read() }}'",
    "select '{{ lipsum.__globals__.os.system('touch PWNED') }}'",
    "select '{{ range.__self__.open('/etc/passwd').read() }}'",
    "select '{{ namespace.__init__.__globals__ }}'",
    "{{ run_query('copy (select 1) to ''PWNED''') }} select 1",
];

#[test]
fn template_escape_attempts_read_no_file_and_run_no_process() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let root_line = passwd.lines().next().unwrap_or("root:x:0:0").to_string();
    for attempt in ATTEMPTS {
        let p = TempProject::empty();
        p.write("wh_project.yml", "name: esc\ntargets:\n  dev: {warehouse: warehouse}\n");
        p.write("models/m.sql", attempt);
        let out = p.wh(&["build"]);
        let code = out.status.code();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(code == Some(1) || code == Some(2) || code == Some(0), "{attempt}: exit {code:?}\n{text}");
        assert!(!text.contains(&root_line), "{attempt}: /etc/passwd leaked\n{text}");
        assert!(!text.contains("panicked"), "{attempt}\n{text}");
        assert!(!p.path().join("PWNED").exists() && !p.path().join("warehouse/PWNED").exists(), "{attempt}: ran");
        for e in walkdir::WalkDir::new(p.path().join("target")).into_iter().filter_map(Result::ok) {
            if e.file_type().is_file() {
                let body = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                assert!(!body.contains(&root_line), "{attempt}: /etc/passwd in {}", e.path().display());
            }
        }
    }
}

#[test]
fn secret_env_vars_never_reach_sql_target_or_messages() {
    let secret = "s3cr3t-value-9f1c";
    let p = TempProject::empty();
    p.write("wh_project.yml", "name: sec\ntargets:\n  dev: {warehouse: warehouse}\n");
    p.write("models/m.sql", "select '{{ env_var('DBT_ENV_SECRET_TOKEN') }}' as token\n");
    let out = wh_command()
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .env("DBT_ENV_SECRET_TOKEN", secret)
        .arg("build")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("`DBT_ENV_SECRET_TOKEN` is a secret"), "{err}");
    assert!(err.contains("--> models/m.sql:1"), "{err}");
    let mut seen = format!("{}{err}", stdout(&out));
    for e in walkdir::WalkDir::new(p.path()).into_iter().filter_map(Result::ok) {
        if e.file_type().is_file() && !e.path().ends_with("models/m.sql") {
            seen.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
        }
    }
    assert!(!seen.contains(secret), "the secret's value was written or printed");
}

/// Each folder a node writes to, linked outside the warehouse in turn: a
/// table model's, a snapshot's and a seed's. The build refuses up front
/// with exit 2, naming the node and its file, and writes nothing anywhere.
#[test]
fn a_warehouse_folder_linked_outside_it_is_refused_before_anything_is_built() {
    let p = TempProject::example();
    p.write("seeds/regions.csv", "region_id,region\n1,north\n");
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let cases = [
        ("marts", "customer_order_summary", "models/marts/customer_order_summary.sql"),
        ("snapshots", "snp_customers", "snapshots/snp_customers.sql"),
        ("seeds", "regions", "seeds/regions.csv"),
    ];
    let staging = p.path().join("warehouse/staging/stg_orders.parquet");
    let before = checksum(&staging);
    for (folder, node, file) in cases {
        let outside = tempfile::tempdir().unwrap();
        let linked = p.path().join("warehouse").join(folder);
        let kept = p.path().join(format!("kept-{folder}"));
        std::fs::rename(&linked, &kept).unwrap();
        std::os::unix::fs::symlink(outside.path(), &linked).unwrap();
        let out = p.wh(&["build", "--vars", &golden_vars()]);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("would write outside the warehouse; nothing was built"), "{folder}: {err}");
        assert!(err.contains(&format!("{node}: `")), "{folder}: {err}");
        assert!(err.contains(&format!("--> {file}")), "{folder}: {err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "{folder}: written outside");
        assert_eq!(checksum(&staging), before, "{folder}");
        std::fs::remove_file(&linked).unwrap();
        std::fs::rename(&kept, &linked).unwrap();
    }
}
