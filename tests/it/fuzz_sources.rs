//! Bad source files, fuzzed: the Parquet and CSV readers of sources fed
//! truncated files, flipped bytes, a wrong magic number, and schema drift
//! (a column renamed, dropped, retyped or added). Each input runs a real
//! `wh build` over a warehouse built from a good file: it must end in
//! exit 0, 1 or 2 within a minute, never a panic or a hang, and a build
//! that fails leaves every published table as it was. Seeded (ChaCha8);
//! `WH_FUZZ_CASES` multiplies the cases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

fn cases(base: usize) -> usize {
    base * std::env::var("WH_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

fn parquet_bytes(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn good_columns(n: i64) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("id", Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef),
        ("v", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("v{i}"))))),
        ("day", Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 7)))),
    ]
}

fn good_csv(n: i64) -> Vec<u8> {
    let mut s = String::from("id,v,day\n");
    for i in 0..n {
        s.push_str(&format!("{i},v{i},{}\n", i % 7));
    }
    s.into_bytes()
}

/// A schema-drifted Parquet file: one column renamed, dropped, retyped
/// (ids as text) or added.
fn drifted_parquet(kind: usize) -> (String, Vec<u8>) {
    let mut cols = good_columns(50);
    let what = match kind % 4 {
        0 => {
            cols[0].0 = "ident";
            "renamed"
        }
        1 => {
            cols.remove(2);
            "dropped"
        }
        2 => {
            cols[0].1 = Arc::new(StringArray::from_iter_values((0..50).map(|i| format!("id-{i}"))));
            "retyped"
        }
        _ => {
            cols.push(("extra", Arc::new(Int64Array::from_iter_values(0..50))));
            "added"
        }
    };
    (format!("parquet schema drift: {what}"), parquet_bytes(cols))
}

/// A damaged copy of `good`: truncated, bytes flipped, or a wrong magic.
fn damaged(rng: &mut ChaCha8Rng, good: &[u8], kind: &str) -> (String, Vec<u8>) {
    let mut bytes = good.to_vec();
    match rng.random_range(0..3) {
        0 => {
            let at = rng.random_range(0..bytes.len());
            bytes.truncate(at);
            (format!("{kind} truncated at {at}"), bytes)
        }
        1 => {
            let flips = rng.random_range(1..16);
            for _ in 0..flips {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            (format!("{kind} with {flips} bytes flipped"), bytes)
        }
        _ => {
            bytes[..4].copy_from_slice(b"XXXX");
            let end = bytes.len();
            bytes[end - 4..].copy_from_slice(b"YYYY");
            (format!("{kind} with a wrong magic"), bytes)
        }
    }
}

fn drifted_csv(rng: &mut ChaCha8Rng) -> (String, Vec<u8>) {
    let variants: [(&str, &str); 6] = [
        ("csv renamed column", "ident,v,day\n1,a,1\n"),
        ("csv dropped column", "id,v\n1,a\n2,b\n"),
        ("csv retyped column", "id,v,day\nx1,a,1\nx2,b,2\n"),
        ("csv added column", "id,v,day,extra\n1,a,1,9\n"),
        ("csv ragged rows", "id,v,day\n1,a,1\n2,b\n3,c,3,4\n"),
        ("csv invalid utf-8", "id,v,day\n1,\u{0},1\n"),
    ];
    let (what, text) = variants[rng.random_range(0..variants.len())];
    let mut bytes = text.as_bytes().to_vec();
    if what.ends_with("utf-8") {
        bytes.extend_from_slice(&[2, b',', 0xff, 0xfe, b',', b'2', b'\n']);
    }
    (what.to_string(), bytes)
}

/// Runs `wh build` with a deadline; returns the exit code and stderr.
fn build_within(p: &TempProject, vars: &str, limit: Duration) -> (Option<i32>, String) {
    let mut child = wh_command()
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .args(["build", "--vars", vars])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("wh build hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

const TABLES: [&str; 2] = ["stg_events", "next_ids"];

fn published(p: &TempProject) -> Vec<String> {
    TABLES.iter().map(|t| checksum(&p.path().join("warehouse").join(format!("{t}.parquet")))).collect()
}

/// Whether the build reported `model` OK (progress lines: `1 of 2 OK stg_events ...`).
fn reported_ok(err: &str, model: &str) -> bool {
    err.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() > 4 && words[1] == "of" && words[3] == "OK" && words[4] == model
    })
}

/// Builds each bad file of one format over a warehouse built from a good one.
fn run_inputs(ext: &str, good: Vec<u8>, inputs: Vec<(String, Vec<u8>)>) -> usize {
    let p = TempProject::fixture("source_fuzz");
    let sources = std::fs::read_to_string(p.path().join("sources.yml")).unwrap();
    p.write(
        "sources.yml",
        &sources.replace("      - name: events\n", &format!("      - name: events\n        format: {ext}\n")),
    );
    let file = format!("raw/events.{ext}");
    let vars = format!("{{events: '{file}'}}");
    p.write(&file, "");
    std::fs::write(p.path().join(&file), &good).unwrap();
    assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
    let before = published(&p);
    let mut outcomes = [0usize; 3];
    for (what, bytes) in &inputs {
        std::fs::write(p.path().join(&file), bytes).unwrap();
        let (code, err) = build_within(&p, &vars, Duration::from_secs(60));
        assert!(!err.contains("panicked"), "{what}: wh panicked\n{err}");
        let code = code.unwrap_or_else(|| panic!("{what}: killed by a signal\n{err}"));
        assert!((0..=2).contains(&code), "{what}: exit {code}\n{err}");
        outcomes[code as usize] += 1;
        assert!(code == 0 || err.contains("error"), "{what}: exit {code} without a message\n{err}");
        // A table its model built opens whole; one whose model failed or
        // was skipped is as it was.
        for (i, sum) in published(&p).iter().enumerate() {
            if reported_ok(&err, TABLES[i]) {
                read_rows(&p.path().join("warehouse").join(format!("{}.parquet", TABLES[i])));
            } else {
                assert_eq!(sum, &before[i], "{what}: {} changed though its model did not succeed\n{err}", TABLES[i]);
            }
        }
        // Back to the good file's tables for the next input.
        if published(&p) != before {
            std::fs::write(p.path().join(&file), &good).unwrap();
            assert_exit(&p.wh(&["build", "--vars", &vars]), 0);
        }
    }
    eprintln!("{ext} sources: {} inputs, exits 0/1/2: {outcomes:?}", inputs.len());
    inputs.len()
}

#[test]
fn damaged_and_drifted_parquet_sources_never_panic_or_publish_partially() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let good = parquet_bytes(good_columns(200));
    let mut inputs: Vec<_> = (0..cases(12)).map(|_| damaged(&mut rng, &good, "parquet")).collect();
    inputs.extend((0..4).map(drifted_parquet));
    run_inputs("parquet", good, inputs);
}

#[test]
fn damaged_and_drifted_csv_sources_never_panic_or_publish_partially() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let good = good_csv(200);
    let mut inputs: Vec<_> = (0..cases(8)).map(|_| damaged(&mut rng, &good, "csv")).collect();
    inputs.extend((0..cases(6)).map(|_| drifted_csv(&mut rng)));
    run_inputs("csv", good, inputs);
}

/// Regression (found by the long run: a flipped byte in the footer length
/// overflowed the Parquet reader's arithmetic, a panic): a footer length
/// beyond the file is a located source error.
#[test]
fn a_parquet_footer_longer_than_its_file_is_an_error_not_a_panic() {
    let p = TempProject::fixture("source_fuzz");
    let mut bytes = parquet_bytes(good_columns(20));
    let end = bytes.len();
    bytes[end - 8..end - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    p.write("raw/events.parquet", "");
    std::fs::write(p.path().join("raw/events.parquet"), &bytes).unwrap();
    let out = p.wh(&["build", "--vars", "{events: 'raw/events.parquet'}"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("is not a whole Parquet file: its footer claims 4294967295 bytes of a"), "{err}");
    assert!(err.contains("--> sources.yml:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
