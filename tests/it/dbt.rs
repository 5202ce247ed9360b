//! dbt projects as they are: dbt_project.yml and profiles.yml read, dbt's
//! Jinja context, seeds, and the errors a dbt user gets for what wh cannot
//! do. (tests/readers/test_dbt_projects.py compares whole projects with
//! DuckDB's results.)

use crate::common::*;

/// A one-model dbt project with a seed.
fn dbt_project(project_yml: &str) -> TempProject {
    let p = TempProject::empty();
    p.write("dbt_project.yml", project_yml);
    p.write("seeds/people.csv", "id,name,zip\n1,Ann,01234\n2,Bob,98765\n3,Cy,00042\n");
    p.write(
        "macros/m.sql",
        "{% macro upper_name(col) %}{{ return('upper(' ~ col ~ ')') }}{% endmacro %}\n\
         {% macro default__label() %}'dispatched'{% endmacro %}\n",
    );
    p.write(
        "models/people_out.sql",
        "{%- set cols = ['id', 'zip'] -%}\n\
         select {% for c in cols %}{{ c }}{% if not loop.last %}, {% endif %}{% endfor %},\n\
         {{ upper_name('name') }} as name, {{ adapter.dispatch('label')() }} as label,\n\
         '{{ target.name }}' as target_name, '{{ this.name }}' as me, id / 2 as half\n\
         from {{ ref('people') }}\n",
    );
    p
}

#[test]
fn dbt_project_builds_seed_with_column_types_and_jinja_context() {
    let p = dbt_project(
        "name: demo\nprofile: demo\nconfig-version: 2\nseeds:\n  demo:\n    people:\n      +column_types: {zip: varchar}\n",
    );
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    // No profiles.yml: the dev target writes to ./warehouse.
    let seed = read_rows(&p.path().join("warehouse/seeds/people.parquet"));
    assert_eq!(seed, table(&[&["1", "Ann", "01234"], &["2", "Bob", "98765"], &["3", "Cy", "00042"]]));
    let rows = read_rows(&p.path().join("warehouse/people_out.parquet"));
    assert_eq!(
        rows,
        table(&[
            &["1", "01234", "ANN", "dispatched", "dev", "people_out", "0.5"],
            &["2", "98765", "BOB", "dispatched", "dev", "people_out", "1.0"],
            &["3", "00042", "CY", "dispatched", "dev", "people_out", "1.5"],
        ])
    );
}

#[test]
fn misspelt_config_key_in_dbt_project_gets_did_you_mean() {
    let p = dbt_project("name: demo\nmodels:\n  demo:\n    +materialised: view\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown field `materialised`"), "{err}");
    assert!(err.contains("did you mean `+materialized`?"), "{err}");
    assert!(err.contains("dbt_project.yml:4"), "{err}");
}

#[test]
fn unknown_top_level_key_in_dbt_project_is_an_error() {
    let p = dbt_project("name: demo\nmodel-path: [models]\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown field `model-path`"), "{err}");
    assert!(err.contains("did you mean `model-paths`?"), "{err}");
}

#[test]
fn wh_project_wins_over_dbt_project() {
    let p = dbt_project("name: demo\n");
    p.write("wh_project.yml", "name: demo\nseed-paths: [seeds]\n");
    let out = p.wh(&["debug", "--compat"]);
    assert_exit(&out, 0);
    let report = stdout(&out);
    assert!(report.contains("Project `demo` (wh_project.yml)"), "{report}");
    assert!(report.contains("wh_project.yml is present and wins"), "{report}");
}

#[test]
fn unknown_function_is_reported_before_the_build_runs() {
    let p = dbt_project("name: demo\n");
    p.write("models/bad.sql", "select jaro_winkler_similarity(name, 'Ann') as x from {{ ref('people') }}\n");
    let report = p.wh(&["debug", "--compat"]);
    assert_exit(&report, 1);
    assert!(stdout(&report).contains("bad: "), "{}", stdout(&report));
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    let warned = err.find("cannot be planned and will fail").expect(&err);
    let first_model = err.find("1 of ").expect(&err);
    assert!(warned < first_model, "the warning comes before any model runs:\n{err}");
}

#[test]
fn run_query_fails_clearly_at_compile_time() {
    let p = dbt_project("name: demo\n");
    p.write("models/q.sql", "{% set r = run_query('select 1') %}select 1 as x\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("run_query() runs a query while compiling"), "{err}");
    assert!(err.contains("models/q.sql:1"), "{err}");
}

#[test]
fn seed_types_are_inferred_from_every_row() {
    let p = TempProject::empty();
    p.write("dbt_project.yml", "name: demo\n");
    let mut csv = String::from("id,price\n");
    for i in 1..=1500 {
        csv.push_str(&format!("{i},{i}\n"));
    }
    csv.push_str("1501,2.5\n");
    p.write("seeds/prices.csv", &csv);
    p.write(
        "models/total.sql",
        "select sum(price) as total, '{{ target.schema }}' as schema from {{ ref('prices') }}\n",
    );
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    let rows = read_rows(&p.path().join("warehouse/total.parquet"));
    assert_eq!(rows, table(&[&["1125752.5", "main"]]));
}

#[test]
fn jinja_as_dbt_users_write_it() {
    let p = TempProject::empty();
    p.write("dbt_project.yml", "name: demo\nvars:\n  demo:\n    regions: [eu, us]\n");
    p.write(
        "macros/dispatch.sql",
        "{% macro greeting(name) %}{{ return(adapter.dispatch('greeting')(name)) }}{% endmacro %}\n\
         {% macro default__greeting(name) %}'hello {{ name }}'{% endmacro %}\n\
         {% macro duckdb__greeting(name) %}'hi {{ name }}'{% endmacro %}\n\
         {% macro wrap() %}({{ caller() }}){% endmacro %}\n",
    );
    p.write(
        "models/m.sql",
        "{#- a comment -#}\n\
         {%- set xs = var('regions') -%}\n\
         {%- set ns = namespace(total=0) -%}\n\
         {%- for x in xs %}{% set ns.total = ns.total + loop.index %}{% endfor -%}\n\
         select\n\
         {%- for x in xs %}\n    '{{ x | upper }}' as r{{ loop.index }}{{ ',' if not loop.last }}\n{%- endfor %},\n\
         {{ ns.total }} as total,\n\
         '{{ xs | join(\"+\") }}' as j, '{{ \"AbC\" | lower }}' as l, '{{ \"a-b\" | replace(\"-\", \"_\") }}' as r,\n\
         '{{ var(\"missing\", \"d\") }}' as d, '{{ undefined_name | default(\"u\") }}' as u, {{ xs | length }} as n,\n\
         '{{ \"  t  \" | trim }}' as t, '{{ {\"k\": 1} | tojson }}' as js, {{ \"true\" | as_bool }} as b,\n\
         {{ \"42\" | as_number + 1 }} as num, '{{ \"a b\".split(\" \") | last }}' as py,\n\
         {{ greeting('you') }} as g, {% call wrap() %}1 + 1{% endcall %} as w,\n\
         '{{ run_started_at.strftime(\"%Y\") | length }}' as y, {{ invocation_id | length }} as id_len,\n\
         '{{ env_var(\"WH_DBT_TEST_UNSET\", \"fallback\") }}' as e, '{{ target.name }}.{{ target.schema }}' as tg,\n\
         '{{ this }}' as me\n",
    );
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    let rows = read_rows(&p.path().join("warehouse/m.parquet"));
    assert_eq!(
        rows,
        table(&[&[
            "EU",
            "US",
            "3",
            "eu+us",
            "abc",
            "a_b",
            "d",
            "u",
            "2",
            "t",
            "{\"k\":1}",
            "true",
            "43",
            "b",
            "hi you",
            "2",
            "4",
            "36",
            "fallback",
            "dev.main",
            "\"m\"",
        ]])
    );
}

#[test]
fn unit_tests_run_alone_and_report_what_they_lack() {
    let p = dbt_project("name: demo\n");
    let unit = "version: 2\nunit_tests:\n  - name: names_upper\n    model: people_out\n    given:\n\
                \x20     - input: ref('people')\n        rows:\n          - {id: 4, name: dee, zip: '1'}\n\
                \x20   expect:\n      rows:\n        - {id: 4, name: DEE, half: 2}\n";
    p.write("models/unit.yml", unit);
    let out = p.wh(&["build"]);
    assert_exit(&out, 0);
    // Only the unit tests, on the published warehouse.
    let out = p.wh(&["test", "--select", "test_type:unit"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("Testing 0 assertions and 1 unit tests"), "{}", stderr(&out));
    // A wrong expectation fails with the differing rows.
    p.write("models/unit.yml", &unit.replace("half: 2", "half: 3"));
    let out = p.wh(&["test", "--select", "test_type:unit"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("  - | 4  | DEE  | 3") && err.contains("  + | 4  | DEE  | 2"), "{err}");
    // An input the model reads and the test does not mock.
    p.write(
        "models/unit.yml",
        &unit.replace("      - input: ref('people')\n        rows:\n          - {id: 4, name: dee, zip: '1'}\n", ""),
    );
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("the model reads `ref('people')`, which `given` does not mock"), "{err}");
    assert!(err.contains("models/unit.yml:3"), "{err}");
}

#[test]
fn failing_post_hook_fails_its_model_before_it_is_published() {
    let p = dbt_project("name: demo\n");
    assert_exit(&p.wh(&["build"]), 0);
    let published = p.path().join("warehouse/people_out.parquet");
    let before = checksum(&published);
    // The folder's post-hook reads the new version (`this`) and fails.
    p.write("dbt_project.yml", "name: demo\nmodels:\n  demo:\n    +post-hook: \"select nope from {{ this }}\"\n");
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("model `people_out` (models/people_out.sql) failed: post-hook 1 of 1 failed"), "{err}");
    assert!(err.contains("nope") && err.contains("dbt_project.yml:4"), "{err}");
    assert_eq!(checksum(&published), before, "the failed build published the table");
    // A hook is rendered with the model: a bad template is a project error.
    p.write("models/people_out.sql", "{{ config(pre_hook='select {{ this.name.nope.deeper }}') }}\nselect 1 as id\n");
    p.write("dbt_project.yml", "name: demo\n");
    let out = p.wh(&["build"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("cannot render a hook") && err.contains("models/people_out.sql:1"), "{err}");
}

#[test]
fn failing_run_hooks_exit_1_at_their_line() {
    let p = dbt_project("name: demo\non-run-start:\n  - \"create table log as select 1 as x\"\n  - \"insert into missing values (1)\"\n");
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("on-run-start hook 2 of 2 failed") && err.contains("dbt_project.yml:4"), "{err}");
    assert!(!p.path().join("warehouse/people_out.parquet").exists(), "a model ran after on-run-start failed");
    // on-run-end runs once the models are published, with dbt's `results`;
    // its failure is the exit code (here the table its SQL names is missing).
    let end = "{% for r in results if r.node.name == 'people_out' %}select * from done_{{ r.status }}_\
               {{ r.node.resource_type }}_{{ results | length }}{% endfor %}";
    p.write("dbt_project.yml", &format!("name: demo\non-run-end: \"{end}\"\n"));
    let out = p.wh(&["build"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("on-run-end hook 1 of 1 failed") && err.contains("dbt_project.yml:2"), "{err}");
    assert!(err.contains("done_success_model_2"), "{err}");
    assert_eq!(p.rows("people_out.parquet").len(), 3);
    // A hook that is not SQL is a project error at its key, in either place.
    for (yml, line) in [
        ("models:\n  demo:\n    +post-hook: 3\n", "dbt_project.yml:4"),
        ("on-run-start: [{x: 1}]\n", "dbt_project.yml:2"),
    ] {
        p.write("dbt_project.yml", &format!("name: demo\n{yml}"));
        let out = p.wh(&["compile"]);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("a hook is a SQL statement") && err.contains(line), "{err}");
    }
}

#[test]
fn flags_are_true_to_the_command() {
    let p = dbt_project("name: demo\n");
    p.write("models/flags.sql", "select '{{ flags.WHICH }}' as which, {{ flags.FULL_REFRESH }} as full_refresh\n");
    assert_exit(&p.wh(&["build", "--full-refresh", "--select", "flags"]), 0);
    assert_eq!(p.rows("flags.parquet"), table(&[&["build", "true"]]));
    assert_exit(&p.wh(&["run", "--select", "flags"]), 0);
    assert_eq!(p.rows("flags.parquet"), table(&[&["run", "false"]]));
}

#[test]
fn test_configs_are_rendered_and_applied_as_dbt_does() {
    let p = dbt_project("name: demo\nvars:\n  lo: 1\n");
    p.write("models/nums.sql", "select * from (values (1), (1), (2), (2), (3), (null)) as t(id)\n");
    p.write(
        "models/nums.yml",
        "version: 2\nmodels:\n  - name: nums\n    columns:\n      - name: id\n        data_tests:\n\
         \x20         - not_null:\n              config:\n                enabled: \"{{ target.name == 'prod' }}\"\n\
         \x20         - unique:\n              where: \"id > {{ var('lo') }}\"\n              config:\n\
         \x20               error_if: \">1\"\n\
         \x20         - accepted_values:\n              values: [3]\n              config:\n\
         \x20               limit: 2\n                severity: warn\n\
         \x20         - not_null:\n              config:\n                fail_calc: \"count(*) * 10\"\n\
         \x20               severity: warn\n",
    );
    let out = p.wh(&["build", "--select", "nums"]);
    assert_exit(&out, 0);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let tests: std::collections::BTreeMap<String, (String, u64)> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unique_id"].as_str().unwrap().starts_with("test."))
        .map(|r| {
            let id = r["unique_id"].as_str().unwrap().to_string();
            (id, (r["status"].as_str().unwrap().to_string(), r["failures"].as_u64().unwrap_or(0)))
        })
        .collect();
    // The first not_null is disabled on this target; unique sees only ids
    // above `lo` (one duplicate: 2); accepted_values counts at most `limit`
    // rows; the second not_null counts its one null row by its `fail_calc`.
    let expected = [
        ("test.demo.accepted_values_nums_id".to_string(), ("warn".to_string(), 2)),
        ("test.demo.not_null_nums_id".to_string(), ("warn".to_string(), 10)),
        ("test.demo.unique_nums_id".to_string(), ("warn".to_string(), 1)),
    ];
    assert_eq!(tests, expected.into_iter().collect(), "{}", stderr(&out));
}
