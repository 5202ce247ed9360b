//! The customer data platform of the example project: identity resolution
//! measured against the generator's answer file, on the hand-made fixture,
//! at scale 1 and at scale 10.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;

/// Pairwise precision and recall of the resolved profiles against the
/// answer file: over every pair of records, "same profile" against "same
/// person".
fn matching(project: &TempProject, truth: &Path) -> (f64, f64) {
    let profiles: HashMap<String, String> = project
        .rows("cdp/identity/cdp_record_profiles.parquet")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let prefix = |source: &str| match source {
        "crm_customers" => "crm",
        "marketing_leads" => "lead",
        "web_events" => "web",
        _ => "pos",
    };
    let mut cells: HashMap<(String, String), u64> = HashMap::new();
    let mut by_profile: HashMap<String, u64> = HashMap::new();
    let mut by_person: HashMap<String, u64> = HashMap::new();
    let answers = read_rows(&truth.join("cdp_truth.parquet"));
    assert_eq!(answers.len(), profiles.len(), "every record has a profile");
    for row in answers {
        let key = format!("{}:{}", prefix(&row[0]), row[1]);
        let profile = profiles.get(&key).unwrap_or_else(|| panic!("record {key} has no profile")).clone();
        *cells.entry((profile.clone(), row[2].clone())).or_default() += 1;
        *by_profile.entry(profile).or_default() += 1;
        *by_person.entry(row[2].clone()).or_default() += 1;
    }
    let pairs = |counts: &mut dyn Iterator<Item = &u64>| counts.map(|n| n * (n - 1) / 2).sum::<u64>() as f64;
    let both = pairs(&mut cells.values());
    (both / pairs(&mut by_profile.values()), both / pairs(&mut by_person.values()))
}

/// Builds the customer data platform's models over `cdp_root`.
fn build_cdp(p: &TempProject, cdp_root: &Path) {
    let vars = format!("{{cdp_root: '{}'}}", cdp_root.display());
    let out = p.wh(&["build", "--select", "+tag:cdp", "--vars", &vars]);
    assert_exit(&out, 0);
}

fn example_with_tests() -> TempProject {
    let p = TempProject::example();
    copy(&repo().join("data_tests"), &p.path().join("data_tests"));
    p
}

#[test]
fn the_fixture_resolves_exactly() {
    let data = tempfile::tempdir().unwrap();
    wh::datagen::cdp::fixture(data.path()).unwrap();
    let p = example_with_tests();
    build_cdp(&p, data.path());
    let (precision, recall) = matching(&p, data.path());
    eprintln!("fixture: precision {precision}, recall {recall}");
    assert_eq!((precision, recall), (1.0, 1.0));

    // The household shares a phone and keeps two profiles; the phone is
    // recorded as not linked, with the rule that says why.
    let ids = p.rows("cdp/marts/profile_identifiers.parquet");
    let household: Vec<&Vec<String>> = ids.iter().filter(|r| r[2] == "+34612000002").collect();
    assert!(!household.is_empty());
    assert!(household.iter().all(|r| r[4] == "phone_not_linked_conflicting_emails"), "{household:?}");
    let profiles: std::collections::BTreeSet<&String> = household.iter().map(|r| &r[0]).collect();
    assert_eq!(profiles.len(), 2);
    // Diego has no email: his CRM record, lead and ticket join by phone.
    let diego: Vec<&Vec<String>> = ids.iter().filter(|r| r[2] == "+34612000004").collect();
    assert_eq!(diego.iter().map(|r| &r[0]).collect::<std::collections::BTreeSet<_>>().len(), 1);
    assert!(diego.iter().all(|r| r[4] == "phone"));

    // One profile per person: 9 people, 8 of them known (not anonymous).
    let dim = p.rows("cdp/marts/dim_customer_profile.parquet");
    assert_eq!(dim.len(), 9);
    let ana = dim.iter().find(|r| r[3] == "+34612000001").unwrap();
    assert_eq!(ana[2], "ana.perez@email.com");
    assert_eq!(ana[6], "crm,marketing,pos,web");
    assert_eq!(ana[12], "true", "consent of Ana's lead");
    assert_eq!(ana[11], "30.0", "two tickets of 10 and 20");
    assert_eq!(p.rows("cdp/marts/mart_profile_360.parquet").len(), 8);
}

#[test]
fn scale_1_matches_above_99_percent() {
    let data = tempfile::tempdir().unwrap();
    let counts = wh::datagen::cdp::generate(data.path(), 1.0, 42).unwrap();
    let p = example_with_tests();
    build_cdp(&p, data.path());
    let (precision, recall) = matching(&p, data.path());
    eprintln!("scale 1 ({} people): precision {precision:.5}, recall {recall:.5}", counts.people);
    assert!(precision > 0.99 && recall > 0.99, "precision {precision}, recall {recall}");
}

#[test]
fn components_scale_to_scale_10() {
    let data = tempfile::tempdir().unwrap();
    let counts = wh::datagen::cdp::generate(data.path(), 10.0, 42).unwrap();
    let p = example_with_tests();
    let clock = std::time::Instant::now();
    build_cdp(&p, data.path());
    let (precision, recall) = matching(&p, data.path());
    eprintln!(
        "scale 10 ({} people, {} records): precision {precision:.5}, recall {recall:.5}, built in {:.1} s",
        counts.people,
        counts.crm_customers + counts.marketing_leads + counts.web_events + counts.pos_tickets,
        clock.elapsed().as_secs_f64()
    );
    assert!(precision > 0.99 && recall > 0.99, "precision {precision}, recall {recall}");
    // The convergence tests ran and passed (they fail when rounds are short).
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("target/run_results.json")).unwrap()).unwrap();
    let converged: Vec<&serde_json::Value> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unique_id"].as_str().unwrap_or_default().contains("converged"))
        .collect();
    assert_eq!(converged.len(), 2);
    assert!(converged.iter().all(|r| r["status"] == "pass"), "{converged:?}");
}

/// The example project over the hand-made fixture, built.
fn built_fixture() -> (TempProject, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    wh::datagen::cdp::fixture(data.path()).unwrap();
    let p = example_with_tests();
    build_cdp(&p, data.path());
    (p, data)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn public_marts_are_masked_and_marketing_keeps_consenting_profiles() {
    let (p, _data) = built_fixture();
    let dim = p.rows("cdp/marts/dim_customer_profile.parquet");
    let by_id: HashMap<&String, &Vec<String>> = dim.iter().map(|r| (&r[0], r)).collect();
    // mart_profile_360 is public: name, email and phone are hashed (pii
    // reaches them along the lineage); the rest is as in the dimension.
    let mart = p.rows("cdp/marts/mart_profile_360.parquet");
    assert_eq!(mart.len(), 8);
    for row in &mart {
        let d = by_id[&row[0]];
        for (masked, clear) in [(1, 1), (2, 2), (3, 3)] {
            let expected = if d[clear] == "NULL" { "NULL".to_string() } else { sha256_hex(&d[clear]) };
            assert_eq!(row[masked], expected, "{row:?} vs {d:?}");
        }
        assert_eq!(row[4], d[6], "channels are not personal");
    }
    // The dimension is internal: not masked.
    assert!(dim.iter().any(|r| r[2] == "ana.perez@email.com"));

    // mart_marketing_audience is tagged marketing: its SQL returns every
    // profile with an email, only those with consent are written.
    let audience = p.rows("cdp/marts/mart_marketing_audience.parquet");
    let with_email = dim.iter().filter(|r| r[2] != "NULL").count();
    let consenting: Vec<&String> = dim.iter().filter(|r| r[2] != "NULL" && r[12] == "true").map(|r| &r[0]).collect();
    assert!(consenting.len() < with_email, "the fixture has people with an email and no consent");
    assert_eq!(audience.iter().map(|r| &r[0]).collect::<Vec<_>>(), consenting);
}

#[test]
fn check_names_the_path_of_pii_reaching_a_public_model_unmasked() {
    let p = example_with_tests();
    // Masking only on prod: on dev, nothing masks the public marts.
    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    p.write(
        "wh_project.yml",
        &project.replace("masking: {method: hash, access: [public]}", "masking: {method: hash, targets: [prod]}"),
    );
    p.write(
        "models/cdp/marts/partner_export.sql",
        "select profile_id, primary_email, encode(sha256(primary_email), 'hex') as email_key\n\
         from {{ ref('dim_customer_profile') }}\n",
    );
    p.write(
        "models/cdp/marts/_partner.yml",
        "version: 2\nmodels:\n  - name: partner_export\n    description: Sent to a partner.\n    access: public\n\
         \x20   meta: {owner: data-engineering, steward: privacy-office}\n    columns:\n\
         \x20     - name: profile_id\n        description: Profile.\n        data_tests: [unique]\n\
         \x20     - name: email_key\n        description: Pseudonymised email.\n        meta: {transformation: pseudonymised}\n",
    );
    let out = p.wh(&["check"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "public model `partner_export` would publish `primary_email` unmasked: column `primary_email` carries `pii` \
             along partner_export.primary_email <- dim_customer_profile.primary_email <- cdp_identity_records.email <- \
             stg_cdp_crm_customers.email <- cdp.crm_customers.email"
        ),
        "{err}"
    );
    assert!(!err.contains("`email_key`"), "a pseudonymised column no longer carries pii:\n{err}");
    assert!(err.contains("models/cdp/marts/_partner.yml:3"), "{err}");
    // The shop's public marts state why their names stay: not reported.
    assert!(!err.contains("customer_order_summary"), "{err}");

    // With the masking back on dev, the check passes.
    p.write("wh_project.yml", &project);
    assert_exit(&p.wh(&["check"]), 0);
}

#[test]
fn a_forgotten_person_is_gone_from_every_model_with_an_audit_record() {
    let (p, data) = built_fixture();
    let vars = format!("{{cdp_root: '{}'}}", data.path().display());
    // Ana: CRM 1001, lead 1, three web events on dev-a, two tickets on card 501.
    let ana = ["ana.perez@email.com", "+34612000001", "1001", "501", "ck-a1", "ck-a2", "dev-a"];
    let cdp_tables: Vec<String> =
        tables(&p.path().join("warehouse")).into_iter().filter(|t| t.starts_with("cdp/")).collect();
    let holding = |p: &TempProject| -> Vec<String> {
        cdp_tables
            .iter()
            .filter(|t| p.rows(t).iter().any(|r| r.iter().any(|c| ana.contains(&c.as_str()))))
            .cloned()
            .collect()
    };
    assert!(holding(&p).len() >= 8, "{:?}", holding(&p));
    let before = p.rows("cdp/marts/dim_customer_profile.parquet").len();

    // While a build holds the warehouse, nothing is forgotten (exit 2).
    let lock = p.path().join("warehouse/_wh/lock");
    let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let holder = serde_json::json!({"run_id": "live-run", "command": "build", "user": "someone", "host": host,
        "pid": std::process::id(), "started_at": "2026-01-01T00:00:00Z"});
    std::fs::write(&lock, holder.to_string()).unwrap();
    let refused = p.wh(&["forget", "--identifier", "email:ana.perez@email.com", "--vars", &vars]);
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("is locked by run live-run"), "{}", stderr(&refused));
    assert!(!p.path().join("warehouse/_wh/forgotten.parquet").exists());
    std::fs::remove_file(&lock).unwrap();

    let out =
        p.wh(&["forget", "--identifier", "email: Ana.Perez@Email.com ", "--reason", "request 42", "--vars", &vars]);
    assert_exit(&out, 0);
    assert!(holding(&p).is_empty(), "still there: {:?}", holding(&p));
    assert_eq!(p.rows("cdp/marts/dim_customer_profile.parquet").len(), before - 1);
    // Nobody else lost a record: 26 records, Ana had 7.
    assert_eq!(p.rows("cdp/identity/cdp_record_profiles.parquet").len(), 26 - 7);

    let audits: Vec<std::path::PathBuf> =
        std::fs::read_dir(p.path().join("warehouse/_wh/forget")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(audits.len(), 1);
    let text = std::fs::read_to_string(&audits[0]).unwrap();
    assert!(!text.contains("ana.perez"), "the audit record holds hashes, not identifiers: {text}");
    let audit: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(audit["status"], "completed");
    assert_eq!(audit["reason"], "request 42");
    assert_eq!(audit["requested"][0]["sha256"], sha256_hex("ana.perez@email.com"));
    assert_eq!(audit["profiles"], 1);
    assert_eq!(audit["rows_removed"]["cdp_record_profiles"], 7);
    assert_eq!(audit["rows_removed"]["stg_cdp_web_events"], 3);
    assert_eq!(audit["identifiers_forgotten"]["cookie_id"], 2);

    // A rebuild keeps her out; forgetting her again finds nobody.
    assert_exit(&p.wh(&["build", "--full-refresh", "--select", "+tag:cdp", "--vars", &vars]), 0);
    assert!(holding(&p).is_empty());
    let again = p.wh(&["forget", "--identifier", "email:ana.perez@email.com", "--vars", &vars]);
    assert_exit(&again, 1);
    assert!(stderr(&again).contains("Nobody carries the given email"), "{}", stderr(&again));
}

#[test]
fn masking_truncates_or_drops_as_configured_and_only_on_its_targets() {
    let data = tempfile::tempdir().unwrap();
    wh::datagen::cdp::fixture(data.path()).unwrap();
    let p = example_with_tests();
    let project = std::fs::read_to_string(p.path().join("wh_project.yml")).unwrap();
    let policy = "masking: {method: hash, access: [public]}";
    let with = |masking: &str| p.write("wh_project.yml", &project.replace(policy, masking));

    with("masking: {method: truncate, keep: 3}");
    build_cdp(&p, data.path());
    let dim = p.rows("cdp/marts/dim_customer_profile.parquet");
    let by_id: HashMap<&String, &Vec<String>> = dim.iter().map(|r| (&r[0], r)).collect();
    for row in p.rows("cdp/marts/mart_profile_360.parquet") {
        let name = &by_id[&row[0]][1];
        let expected = if name == "NULL" { "NULL".to_string() } else { name.chars().take(3).collect() };
        assert_eq!(row[1], expected);
    }

    with("masking: {method: drop}");
    build_cdp(&p, data.path());
    let columns = columns(&p.schema("cdp/marts/mart_profile_360.parquet"));
    assert!(!columns.iter().any(|c| c == "name" || c == "primary_email" || c == "primary_phone"), "{columns:?}");
    assert!(columns.iter().any(|c| c == "channels"));

    // Masking on prod only: the dev build writes the columns in clear.
    with("masking: {method: hash, targets: [prod]}");
    build_cdp(&p, data.path());
    let mart = p.rows("cdp/marts/mart_profile_360.parquet");
    assert!(mart.iter().any(|r| r[2] == "ana.perez@email.com"));
}
