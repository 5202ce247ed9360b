//! OpenLineage events (spec 2-0-2) for a run: the invocation is the parent
//! run; each model gets a START and a COMPLETE or FAIL event with the
//! facets `schema`, `columnLineage`, `dataQualityAssertions`, `ownership`,
//! `documentation` and `sql`. Written as JSON lines to a file, and sent to
//! `$OPENLINEAGE_URL/api/v1/lineage` when that variable is set.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value as Json};

use super::ProjectLineage;
use crate::compile::assertions::Subject;
use crate::compile::Compiled;
use crate::quality::run::Outcome;
use crate::quality::Status as TestStatus;
use crate::results::{NodeResult, Status};
use crate::storage::Warehouse;

const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
const PRODUCER: &str = concat!("https://github.com/wh-warehouse/wh/tree/v", env!("CARGO_PKG_VERSION"));

/// Facet versions this producer writes (spec/facets/<version>/<name>.json).
fn facet_version(name: &str) -> &'static str {
    match name {
        "SchemaDatasetFacet" => "1-2-0",
        "ColumnLineageDatasetFacet" => "1-2-0",
        "DataQualityAssertionsDatasetFacet" => "1-1-0",
        "OwnershipDatasetFacet" => "1-0-1",
        "DocumentationDatasetFacet" | "DocumentationJobFacet" => "1-1-0",
        "SQLJobFacet" => "1-1-0",
        "JobTypeJobFacet" => "2-0-4",
        "ParentRunFacet" => "1-2-0",
        "ErrorMessageRunFacet" => "1-0-1",
        _ => "1-0-0",
    }
}

fn facet(schema: &str, mut body: Json) -> Json {
    let name = schema.trim_end_matches(".json");
    body["_producer"] = json!(PRODUCER);
    body["_schemaURL"] =
        json!(format!("https://openlineage.io/spec/facets/{}/{name}.json#/$defs/{name}", facet_version(name)));
    body
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What the events describe.
pub struct RunContext<'a> {
    pub compiled: &'a Compiled,
    pub lineage: &'a ProjectLineage,
    pub warehouse: &'a Warehouse,
    pub invocation_id: &'a str,
    pub started_at: DateTime<Utc>,
    pub namespace: String,
}

/// Returns the OpenLineage dataset (namespace, name) of a model's output or
/// of a source location (`file` + absolute path; `s3://bucket` + key).
pub fn dataset_name(location: &str) -> (String, String) {
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        return (format!("s3://{bucket}"), key.to_string());
    }
    ("file".to_string(), location.to_string())
}

/// Builds every event of a run, in time order: parent START, each model's
/// START and COMPLETE/FAIL, each tested relation's test job, parent
/// COMPLETE/FAIL.
///
/// Assertion results follow the spec, where `dataQualityAssertions` is an
/// input dataset facet: as dbt's integration does, the assertions on one
/// relation form a job `<project>.<relation>.test` that reads the relation,
/// whose input carries the facet. That job fails when an error-severity
/// assertion fails.
pub fn events(
    ctx: &RunContext<'_>,
    results: &[NodeResult],
    other_assertions: &[Outcome],
    finished_at: DateTime<Utc>,
) -> Vec<Json> {
    let e = Emitter::new(ctx);
    let mut out = vec![(ctx.started_at, e.parent("START", &ctx.started_at))];
    // Skipped and reused models did not run: no events.
    for r in results.iter().filter(|r| r.status != Status::Skipped && !r.reused) {
        out.extend(e.model_events(r));
    }
    // Assertions, grouped by the relation they test, with when they ran: a
    // model's audits inside its run, source assertions first, deferred ones
    // at the end.
    let mut tested: BTreeMap<&str, Tested> = BTreeMap::new();
    let timed = results.iter().flat_map(|r| r.assertions.iter().map(move |o| (o, r.started_at, r.completed_at))).chain(
        other_assertions.iter().map(|o| {
            let at = if matches!(o.assertion.subject, Subject::Source(_)) { ctx.started_at } else { finished_at };
            (o, at, at)
        }),
    );
    for (o, from, to) in timed {
        let entry = tested.entry(o.assertion.subject.name()).or_insert((from, to, Vec::new()));
        entry.0 = entry.0.min(from);
        entry.1 = entry.1.max(to);
        entry.2.push(o);
    }
    for (relation, tested) in tested {
        out.extend(e.test_events(relation, tested));
    }
    let failed = results.iter().any(|r| r.status == Status::Error);
    out.push((finished_at, e.parent(if failed { "FAIL" } else { "COMPLETE" }, &finished_at)));
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, e)| e).collect()
}

/// Builds the events of one run.
struct Emitter<'a> {
    ctx: &'a RunContext<'a>,
    /// The job of the whole invocation, parent of every other.
    parent_job: String,
    /// Each source's location by `source.table`.
    sources: BTreeMap<&'a str, &'a str>,
}

/// One event with the time it sorts by.
type Timed = (DateTime<Utc>, Json);

impl<'a> Emitter<'a> {
    fn new(ctx: &'a RunContext<'a>) -> Self {
        let compiled = ctx.compiled;
        Emitter {
            ctx,
            parent_job: format!("{}.invocation", compiled.project_name),
            sources: compiled.sources.iter().map(|(k, s)| (k.as_str(), s.location.as_str())).collect(),
        }
    }

    /// The location of a source or of a model's output.
    fn location_of(&self, rel: &str) -> Option<String> {
        if let Some(loc) = self.sources.get(rel) {
            return Some(loc.to_string());
        }
        self.ctx.compiled.models.get(rel)?.output_path().map(|p| self.ctx.warehouse.location(&p))
    }

    /// The invocation's own START or COMPLETE/FAIL event.
    fn parent(&self, event: &str, at: &DateTime<Utc>) -> Json {
        json!({
            "eventType": event,
            "eventTime": ts(at),
            "run": { "runId": self.ctx.invocation_id, "facets": {} },
            "job": { "namespace": self.ctx.namespace, "name": self.parent_job, "facets": {
                "jobType": facet("JobTypeJobFacet.json", json!({"processingType": "BATCH", "integration": "WH", "jobType": "DAG"})),
            }},
            "inputs": [], "outputs": [],
            "producer": PRODUCER,
            "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
        })
    }

    /// A child run: its id, the parent facet and `extra` facets.
    fn child_run(&self, run_id: &str, extra: Json) -> Json {
        let mut facets = json!({
            "parent": facet("ParentRunFacet.json", json!({
                "run": {"runId": self.ctx.invocation_id},
                "job": {"namespace": self.ctx.namespace, "name": self.parent_job},
            })),
        });
        if let Json::Object(e) = extra {
            for (k, v) in e {
                facets[k] = v;
            }
        }
        json!({"runId": run_id, "facets": facets})
    }

    /// A model's START and COMPLETE/FAIL events.
    fn model_events(&self, r: &NodeResult) -> [Timed; 2] {
        let compiled = self.ctx.compiled;
        let m = &compiled.models[&r.name];
        let run_id = uuid::Uuid::new_v4().to_string();
        let inputs: Vec<Json> = m
            .refs
            .iter()
            .chain(m.sources.iter())
            .filter_map(|rel| self.location_of(rel))
            .map(|loc| {
                let (ns, name) = dataset_name(&loc);
                json!({"namespace": ns, "name": name, "facets": {}})
            })
            .collect();
        let mut job_facets = json!({
            "sql": facet("SQLJobFacet.json", json!({"query": m.sql})),
            "jobType": facet("JobTypeJobFacet.json", json!({"processingType": "BATCH", "integration": "WH", "jobType": "MODEL"})),
        });
        if !m.description.is_empty() {
            job_facets["documentation"] = facet("DocumentationJobFacet.json", json!({"description": m.description}));
        }
        let outputs: Vec<Json> = self.output_dataset(m).into_iter().collect();
        let job = json!({"namespace": self.ctx.namespace, "name": format!("{}.{}", compiled.project_name, m.name), "facets": job_facets});
        let (inputs, outputs) = (Json::Array(inputs), Json::Array(outputs));
        let (kind, extra) = match r.status {
            Status::Success => ("COMPLETE", json!({})),
            _ => (
                "FAIL",
                json!({"errorMessage": facet("ErrorMessageRunFacet.json", json!({
                    "message": r.message, "programmingLanguage": "SQL",
                }))}),
            ),
        };
        let start = event("START", &r.started_at, self.child_run(&run_id, json!({})), &job, &inputs, &outputs);
        let end = event(kind, &r.completed_at, self.child_run(&run_id, extra), &job, &inputs, &outputs);
        [(r.started_at, start), (r.completed_at, end)]
    }

    /// The dataset a model writes, with its schema, column lineage,
    /// ownership and documentation facets; none for a view or ephemeral.
    fn output_dataset(&self, m: &crate::compile::CompiledModel) -> Option<Json> {
        let loc = m.output_path().map(|p| self.ctx.warehouse.location(&p))?;
        let (ns, name) = dataset_name(&loc);
        let mut facets = serde_json::Map::new();
        if let Some(l) = self.ctx.lineage.models.get(&m.name) {
            let fields: Vec<Json> = l.columns.iter().map(|c| json!({"name": c.name, "type": c.data_type})).collect();
            facets.insert("schema".into(), facet("SchemaDatasetFacet.json", json!({"fields": fields})));
            facets.insert("columnLineage".into(), self.column_lineage(l));
        }
        let owners: Vec<Json> = [("owner", "OWNER"), ("steward", "DATA_STEWARD")]
            .iter()
            .filter_map(|(k, t)| m.config.meta.get(*k).and_then(Json::as_str).map(|n| json!({"name": n, "type": t})))
            .collect();
        if !owners.is_empty() {
            facets.insert("ownership".into(), facet("OwnershipDatasetFacet.json", json!({"owners": owners})));
        }
        if !m.description.is_empty() {
            facets.insert(
                "documentation".into(),
                facet("DocumentationDatasetFacet.json", json!({"description": m.description})),
            );
        }
        Some(json!({"namespace": ns, "name": name, "facets": facets}))
    }

    /// The `columnLineage` facet: each column's input fields and how.
    fn column_lineage(&self, l: &crate::lineage::ModelLineage) -> Json {
        let mut cl = serde_json::Map::new();
        for c in &l.columns {
            let Some(origins) = &c.origins else { continue };
            let input_fields: Vec<Json> = origins
                .iter()
                .filter_map(|(i, kinds)| {
                    let (ns, name) = dataset_name(&self.location_of(&i.relation)?);
                    let transformations: Vec<Json> = kinds
                        .iter()
                        .map(|k| {
                            let direct = if k.is_direct() { "DIRECT" } else { "INDIRECT" };
                            json!({"type": direct, "subtype": serde_json::to_value(k).unwrap_or_default()})
                        })
                        .collect();
                    Some(json!({"namespace": ns, "name": name, "field": i.column, "transformations": transformations}))
                })
                .collect();
            cl.insert(c.name.clone(), json!({"inputFields": input_fields}));
        }
        facet("ColumnLineageDatasetFacet.json", json!({"fields": cl}))
    }

    /// The test job of one relation: START and COMPLETE/FAIL, its input
    /// carrying the `dataQualityAssertions` facet.
    fn test_events(&self, relation: &str, (from, to, outcomes): Tested<'_>) -> Vec<Timed> {
        let Some(loc) = self.location_of(relation) else { return Vec::new() };
        let (ns, name) = dataset_name(&loc);
        let assertions: Vec<Json> = outcomes.iter().map(|o| assertion_json(o)).collect();
        let inputs = json!([{"namespace": ns, "name": name, "facets": {}, "inputFacets": {
            "dataQualityAssertions": facet("DataQualityAssertionsDatasetFacet.json", json!({"assertions": assertions})),
        }}]);
        let job = json!({"namespace": self.ctx.namespace, "name": format!("{}.{relation}.test", self.ctx.compiled.project_name), "facets": {
            "jobType": facet("JobTypeJobFacet.json", json!({"processingType": "BATCH", "integration": "WH", "jobType": "TEST"})),
        }});
        let failed = outcomes.iter().any(|o| matches!(o.status, TestStatus::Fail | TestStatus::Error));
        let run_id = uuid::Uuid::new_v4().to_string();
        let end = if failed { "FAIL" } else { "COMPLETE" };
        vec![
            (from, event("START", &from, self.child_run(&run_id, json!({})), &job, &inputs, &json!([]))),
            (to, event(end, &to, self.child_run(&run_id, json!({})), &job, &inputs, &json!([]))),
        ]
    }
}

/// One RunEvent.
fn event(kind: &str, at: &DateTime<Utc>, run: Json, job: &Json, inputs: &Json, outputs: &Json) -> Json {
    json!({
        "eventType": kind, "eventTime": ts(at), "run": run, "job": job,
        "inputs": inputs, "outputs": outputs, "producer": PRODUCER, "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
    })
}

/// A tested relation's assertions, with the earliest start and latest end.
type Tested<'a> = (DateTime<Utc>, DateTime<Utc>, Vec<&'a Outcome>);

/// Returns one assertion of the `dataQualityAssertions` facet. `success`
/// is whether the check found no issue, whatever its severity.
fn assertion_json(o: &Outcome) -> Json {
    let a = &o.assertion;
    let mut j = json!({
        "assertion": a.kind,
        "success": o.status == TestStatus::Pass,
        "name": a.name,
        "severity": a.severity.as_str(),
        "actual": o.failing.to_string(),
        "content": a.failing_sql,
        "contentType": "sql",
    });
    if let Some(c) = &a.column {
        j["column"] = json!(c);
    }
    if !a.params.is_empty() {
        j["params"] = Json::Object(a.params.clone());
    }
    j
}

/// Joins the base URL and the endpoint path: `http://host:5000` and
/// `api/v1/lineage` give `http://host:5000/api/v1/lineage`; a query on the
/// base URL (`?token=...`) stays at the end.
fn endpoint_url(base: &str, endpoint: Option<&str>) -> String {
    let path = endpoint.unwrap_or("api/v1/lineage").trim_start_matches('/');
    let (base, query) = base.split_once('?').map_or((base, None), |(b, q)| (b, Some(q)));
    let joined = format!("{}/{path}", base.trim_end_matches('/'));
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

/// Writes events as JSON lines to `path`, and posts them to
/// `$OPENLINEAGE_URL/$OPENLINEAGE_ENDPOINT` (default `api/v1/lineage`) when
/// the URL is set, with `$OPENLINEAGE_API_KEY` as a bearer token when set,
/// as OpenLineage's own clients read them. Returns how many were sent.
pub fn emit(events: &[Json], path: &Path) -> std::io::Result<usize> {
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    crate::storage::publish::write_atomic(path, text.as_bytes())?;
    let Ok(url) = std::env::var("OPENLINEAGE_URL") else { return Ok(0) };
    let endpoint = endpoint_url(&url, std::env::var("OPENLINEAGE_ENDPOINT").ok().as_deref());
    let api_key = std::env::var("OPENLINEAGE_API_KEY").ok().filter(|k| !k.is_empty());
    let mut sent = 0;
    // The first event that is not taken stops the rest: a dead endpoint
    // costs one timeout, not one per event.
    for e in events {
        crate::storage::http::post_json(&endpoint, e, api_key.as_deref())
            .map_err(|err| std::io::Error::other(format!("the OpenLineage endpoint {err}")))?;
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod endpoint_tests {
    use super::endpoint_url;

    #[test]
    fn the_endpoint_joins_the_url_and_keeps_its_query_last() {
        assert_eq!(endpoint_url("http://h:5000/", None), "http://h:5000/api/v1/lineage");
        assert_eq!(endpoint_url("http://h:5000", Some("/events")), "http://h:5000/events");
        assert_eq!(endpoint_url("https://h/x?token=t", None), "https://h/x/api/v1/lineage?token=t");
    }
}
