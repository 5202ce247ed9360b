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
