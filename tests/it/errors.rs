//! Bad input gets a clear error: file, line, hint, exit code 2 (project) or
//! 1 (a model failed).

use crate::common::*;

#[test]
fn cycle_prints_its_path() {
    let p = TempProject::empty();
    p.write("wh_project.yml", "name: demo\n");
    p.write("models/a.sql", "select * from {{ ref('c') }}\n");
    p.write("models/b.sql", "select * from {{ ref('a') }}\n");
    p.write("models/c.sql", "select * from {{ ref('b') }}\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("dependency cycle: a -> c -> b -> a"), "{err}");
    assert!(err.contains("models/a.sql:1"), "{err}");
}

#[test]
fn unknown_ref_names_file_line_and_hint() {
    let p = TempProject::example();
    p.write("models/marts/broken.sql", "-- a typo on line 3\nselect *\nfrom {{ ref('stg_order') }}\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown model `stg_order`"), "{err}");
    assert!(err.contains("models/marts/broken.sql:3"), "{err}");
    assert!(err.contains("did you mean `stg_orders`?"), "{err}");
}

#[test]
fn unknown_source_has_hint() {
    let p = TempProject::example();
    p.write("models/x.sql", "select * from {{ source('shop', 'order') }}\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown source `shop.order`"), "{err}");
    assert!(err.contains("did you mean 'shop.orders'?"), "{err}");
}

#[test]
fn sql_error_names_the_model_file() {
    let p = TempProject::example();
    p.write("models/marts/bad_sql.sql", "select customer_idd\nfrom {{ ref('dim_customers') }}\n");
    let out = p.wh(&["build", "--vars", &golden_vars()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("model `bad_sql` (models/marts/bad_sql.sql) failed"), "{err}");
    assert!(err.contains("customer_idd"), "{err}");
    assert!(err.contains("target/compiled/models/marts/bad_sql.sql:1"), "{err}");
    // Everything else still built.
    assert_eq!(p.rows("marts/customer_order_summary.parquet").len(), 2);
}

#[test]
fn missing_source_file_fails_its_models() {
    let p = TempProject::example();
    let out = p.wh(&["build", "--vars", "{raw_root: /nonexistent/raw}"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("source `shop.customers`: no file or directory at `/nonexistent/raw/customers.parquet`"),
        "{err}"
    );
    assert!(err.contains("sources.yml:"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(err.contains("SKIP"), "{err}");
}

#[test]
fn malformed_yaml_reports_its_line() {
    let p = TempProject::example();
    p.write(
        "models/marts/_bad.yml",
        "version: 2\nmodels:\n  - name: customer_order_summary\n    description: [unclosed\n",
    );
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("models/marts/_bad.yml:"), "{err}");
}

#[test]
fn unknown_config_key_is_an_error_with_hint() {
    let p = TempProject::example();
    p.write(
        "models/marts/_bad.yml",
        "version: 2\nmodels:\n  - name: customer_order_summary\n    config:\n      materialzed: table\n",
    );
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown field `materialzed`"), "{err}");
    assert!(err.contains("models/marts/_bad.yml:5"), "{err}");
    assert!(err.contains("did you mean `materialized`?"), "{err}");
}

#[test]
fn unknown_folder_config_in_project_file() {
    let p = TempProject::example();
    let text = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write("wh_project.yml", &text.replace("+tags: [marts]", "+tagz: [marts]"));
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown field `tagz`"), "{err}");
    assert!(err.contains("wh_project.yml:"), "{err}");
    assert!(err.contains("did you mean `+tags`?"), "{err}");
}

#[test]
fn unknown_key_in_sql_config_call() {
    let p = TempProject::example();
    p.write("models/x.sql", "{{ config(materialised='view') }}\nselect 1 as one\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("invalid config()"), "{err}");
    assert!(err.contains("models/x.sql:1"), "{err}");
    assert!(err.contains("did you mean `materialized`?"), "{err}");
}

#[test]
fn missing_required_var() {
    let p = TempProject::empty();
    p.write("wh_project.yml", "name: demo\n");
    p.write("models/a.sql", "select '{{ var(\"region\") }}' as region\n");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("required var `region` is not set"), "{err}");
    assert!(err.contains("--vars"), "{err}");
}

#[test]
fn unknown_target_and_bad_selector_and_no_project() {
    let p = TempProject::example();
    let out = p.wh(&["compile", "--target", "prd"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("target `prd` is not declared"), "{}", stderr(&out));
    let out = p.wh(&["ls", "--select", "stg_order"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("did you mean `stg_orders`?"), "{}", stderr(&out));
    let empty = TempProject::empty();
    let out = empty.wh(&["build"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no `wh_project.yml`"), "{}", stderr(&out));
    let out = p.wh(&["build", "--vars", "{unclosed"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--vars is not valid YAML"), "{}", stderr(&out));
}
