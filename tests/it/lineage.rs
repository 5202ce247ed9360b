//! Table and column lineage from logical plans, and exposures.

use crate::common::*;

fn lineage(p: &TempProject, args: &[&str]) -> String {
    let vars = golden_vars();
    let mut all = vec!["lineage", "--vars", vars.as_str()];
    all.extend_from_slice(args);
    let out = p.wh(&all);
    assert_exit(&out, 0);
    stdout(&out)
}

#[test]
fn total_spent_reaches_the_raw_order_amount_through_the_aggregation() {
    let p = TempProject::example();
    assert_eq!(
        lineage(&p, &["customer_order_summary.total_spent"]),
        "customer_order_summary.total_spent\n\
         └── fct_orders.total_amount [aggregation]\n    \
             └── stg_orders.total_amount [identity]\n        \
                 └── shop.orders.total_amount (source) [transformation]\n"
    );
}

#[test]
fn r_score_depends_on_order_dates_through_its_window() {
    let p = TempProject::example();
    let tree = lineage(&p, &["mart_customer_rfm.r_score"]);
    assert!(tree.contains("fct_orders.order_date [window]"), "{tree}");
    assert!(tree.contains("shop.orders.order_date (source) [transformation]"), "{tree}");
    // Indirect inputs (join keys, group by) appear with --indirect.
    let all = lineage(&p, &["mart_customer_rfm.customer_name", "--indirect", "--depth", "1"]);
    assert!(all.contains("dim_customers.customer_name [identity]"), "{all}");
    assert!(all.contains("dim_customers.customer_id [join]"), "{all}");
    assert!(all.contains("fct_orders.customer_id [join, group by, sort]"), "{all}");
}

#[test]
fn impact_analysis_lists_columns_marts_and_the_power_bi_exposure() {
    let p = TempProject::example();
    let json = lineage(&p, &["--downstream", "stg_orders.total_amount", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let nodes: Vec<&str> = v["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for expected in [
        "fct_orders.total_amount",
        "customer_order_summary.total_spent",
        "mart_customer_rfm.monetary",
        "pareto_top20.top_share",
        "exposure:customer_value",
    ] {
        assert!(nodes.contains(&expected), "{expected} missing from {nodes:?}");
    }
    assert!(!nodes.contains(&"dim_customers.email"), "{nodes:?}");
    let edge = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == "fct_orders.total_amount" && e["to"] == "customer_order_summary.total_spent")
        .unwrap();
    assert_eq!(edge["kinds"], serde_json::json!(["aggregation"]));
}

#[test]
fn table_lineage_dot_and_mermaid() {
    let p = TempProject::example();
    let tree = lineage(&p, &["customer_order_summary"]);
    assert!(tree.contains("├── dim_customers\n") && tree.contains("shop.customers (source)"), "{tree}");
    let dot = lineage(&p, &["customer_order_summary", "--format", "dot", "--depth", "1"]);
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(dot.contains("\"fct_orders\" -> \"customer_order_summary\""), "{dot}");
    let mermaid = lineage(&p, &["customer_order_summary.total_spent", "--format", "mermaid", "--depth", "1"]);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("-->|aggregation|"), "{mermaid}");
}

#[test]
fn lineage_through_ctes_unions_star_subqueries_and_ephemerals() {
    let p = TempProject::fixture("lineage_through_ctes_unions_star_subqueries_and_ephemerals");
    let tree = {
        let out = p.wh(&["lineage", "out.x"]);
        assert_exit(&out, 0);
        stdout(&out)
    };
    assert_eq!(
        tree,
        "out.x\n└── both.x [identity]\n    ├── raw.a.x (source) [identity]\n    └── raw.b.x (source) [transformation]\n"
    );
    let out = p.wh(&["lineage", "out.top"]);
    assert!(stdout(&out).contains("raw.a.x (source) [aggregation]"), "{}", stdout(&out));
    let out = p.wh(&["lineage", "out.id", "--indirect", "--depth", "1"]);
    assert!(stdout(&out).contains("raw.b.id (source) [filter]"), "{}", stdout(&out));
    let out = p.wh(&["lineage", "out.nope"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("`out` has no column `nope`"), "{}", stderr(&out));
}

#[test]
fn exposures_must_read_known_models() {
    let p = TempProject::fixture("exposures_must_read_known_models");
    let out = p.wh(&["compile"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("exposure `r` reads unknown model `mart_customer_rf`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("did you mean `mart_customer_rfm`?"), "{}", stderr(&out));
}

#[test]
fn build_writes_catalog_from_footers_and_lineage_into_the_manifest() {
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    let catalog: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/catalog.json")).unwrap()).unwrap();
    let fct = &catalog["nodes"]["model.shop.fct_orders"];
    assert_eq!(fct["stats"]["row_count"]["value"], 3);
    let size = std::fs::metadata(p.path().join("warehouse/star/fct_orders.parquet")).unwrap().len();
    assert_eq!(fct["stats"]["bytes"]["value"], size);
    assert_eq!(fct["columns"]["order_date"]["type"], "Date32");
    assert_eq!(fct["columns"]["total_amount"]["type"], "Float64");
    assert_eq!(catalog["nodes"].as_object().unwrap().len(), 34);

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/manifest.json")).unwrap()).unwrap();
    let spent = &manifest["nodes"]["model.shop.customer_order_summary"]["config"]["wh"]["column_lineage"]["columns"]
        ["total_spent"];
    assert_eq!(
        spent["inputs"],
        serde_json::json!([{"relation": "fct_orders", "column": "total_amount", "kinds": ["AGGREGATION"]}])
    );
    let exposure = &manifest["exposures"]["exposure.shop.customer_value"];
    assert_eq!(exposure["type"], "dashboard");
    assert_eq!(
        exposure["depends_on"]["nodes"],
        serde_json::json!(["model.shop.customer_order_summary", "model.shop.mart_customer_rfm"])
    );
}

#[test]
fn docs_generate_then_serve_on_loopback() {
    use std::io::{Read, Write};
    let p = TempProject::example();
    assert_exit(&p.wh(&["build", "--vars", &golden_vars()]), 0);
    assert_exit(&p.wh(&["docs", "generate", "--vars", &golden_vars()]), 0);
    let data = std::fs::read_to_string(p.path().join("target/docs/data.js")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(data.trim().trim_start_matches("window.WH_DOCS = ").trim_end_matches(';')).unwrap();
    assert_eq!(json["models"].as_array().unwrap().len(), 34);
    assert_eq!(json["exposures"][0]["depends_on"], serde_json::json!(["mart_customer_rfm", "customer_order_summary"]));
    let fct = json["models"].as_array().unwrap().iter().find(|m| m["name"] == "fct_orders").unwrap();
    assert_eq!(fct["rows"], 3);
    let recon = fct["tests"].as_array().unwrap().iter().find(|t| t["name"] == "order_total_matches_lines").unwrap();
    assert_eq!(recon["history"][0]["status"], "warn");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new(wh_bin())
        .current_dir(p.path())
        .args(["docs", "serve", "--port", &port.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    let mut page = None;
    for _ in 0..50 {
        page = get("/");
        if page.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let page = page.expect("the server answers");
    assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("<title>wh docs</title>"), "{page}");
    assert!(get("/data.js").unwrap().contains("window.WH_DOCS"));
    assert!(get("/../wh_project.yml").unwrap().starts_with("HTTP/1.1 404"));
    // Loopback only: the machine's own outward address does not answer.
    let outward = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|u| u.connect("10.254.254.254:9").and_then(|_| u.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if let Some(ip) = outward {
        let reached = std::net::TcpStream::connect_timeout(&(ip, port).into(), std::time::Duration::from_secs(2));
        assert!(reached.is_err(), "`wh docs serve` answered on {ip}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
