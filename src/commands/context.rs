//! What a command opens: the warehouse, the object stores of the warehouse
//! and of the sources, and engines that read them. [`Settings`] are plain
//! values resolved once from the flags and the project files; a
//! [`Context`] is built from them once per command and passed down, the
//! one place that turns settings into live handles.

use super::Settings;
use crate::compile::Compiled;
use crate::error::Error;
use crate::exec::duckdb::SqlDialect;
use crate::exec::Engine;
use crate::graph::Graph;
use crate::project::{EngineChoice, Target};
use crate::storage::{Stores, Warehouse};

/// The warehouse and stores a command works on, and how it makes engines.
pub struct Context {
    pub warehouse: Warehouse,
    /// A client for the warehouse's bucket and each bucket the sources name.
    pub stores: Stores,
    target: Target,
    memory_limit: Option<usize>,
    dialect: SqlDialect,
}

impl Context {
    /// Opens the target's warehouse (a local folder or an S3 prefix) and
    /// the stores `compiled`'s sources need; nothing is contacted yet.
    pub fn open(settings: &Settings, compiled: &Compiled) -> Result<Context, Error> {
        let target = settings.project.target.clone();
        let warehouse = Warehouse::open(&target.warehouse, settings.project.local_warehouse(), &target.s3)
            .map_err(|e| target_error(&target, e.message, e.hint))?;
        let stores = stores(&target, compiled, &warehouse)?;
        Ok(Context { warehouse, stores, target, memory_limit: settings.memory_limit, dialect: settings.dialect() })
    }

    /// [`Context::open`], then checks that the warehouse can be reached, so
    /// that refused credentials stop a command before it does any work.
    pub async fn reachable(settings: &Settings, compiled: &Compiled) -> Result<Context, Error> {
        let ctx = Context::open(settings, compiled)?;
        ctx.warehouse.check_access().await.map_err(|e| target_error(&ctx.target, e.message, e.hint))?;
        Ok(ctx)
    }

    /// A local DataFusion session reading the stores, with the memory
    /// limit and the SQL dialect of the project (planning, and queries on
    /// the local engine).
    pub fn session(&self, partitions: Option<usize>) -> Engine {
        Engine::with_stores(partitions, self.memory_limit, &self.stores).with_dialect(self.dialect)
    }

    /// An engine on the target's choice: this process, or a Ballista cluster.
    pub async fn engine(&self, partitions: Option<usize>) -> Result<Engine, Error> {
        let EngineChoice::Ballista { scheduler, job_timeout } = &self.target.engine else {
            return Ok(self.session(partitions));
        };
        let cluster = crate::exec::cluster::Cluster {
            scheduler: scheduler.as_deref(),
            s3: &self.target.s3,
            job_timeout: *job_timeout,
        };
        let hint = match scheduler {
            Some(_) => {
                "start the scheduler (`wh cluster scheduler`) and its executors (`wh cluster executor`), \
                        or check --scheduler"
            }
            None => "run with --engine local",
        };
        Engine::on_cluster(partitions, &cluster, &self.stores, &self.warehouse)
            .await
            .map(|e| e.with_dialect(self.dialect))
            .map_err(|e| target_error(&self.target, e.message, Some(hint.into())))
    }

    /// Plans every model (sources give schemas, no data is read) for its
    /// column lineage.
    pub async fn lineage(&self, compiled: &Compiled, graph: &Graph) -> crate::lineage::ProjectLineage {
        crate::lineage::project_lineage(compiled, graph, self.session(Some(1))).await
    }
}

/// An error about the target's warehouse, S3 settings or cluster, located
/// at the target's declaration in wh_project.yml.
fn target_error(target: &Target, message: String, hint: Option<String>) -> Error {
    Error::Project(crate::project::ProjectError::Invalid {
        message: format!("target `{}`: {message}", target.name),
        location: target.defined_at.clone(),
        hint,
    })
}

/// A client for the warehouse's bucket and each bucket the sources name.
fn stores(target: &Target, compiled: &Compiled, warehouse: &Warehouse) -> Result<Stores, Error> {
    let mut out = Stores::new();
    if let Warehouse::Remote(r) = warehouse {
        out.insert(r.bucket.clone(), r.store.clone());
    }
    for bucket in crate::storage::buckets(compiled.sources.values().map(|s| s.location.as_str())) {
        if out.contains_key(&bucket) {
            continue;
        }
        let store =
            crate::storage::s3_store(&bucket, &target.s3).map_err(|e| target_error(target, e.message, e.hint))?;
        out.insert(bucket, store);
    }
    Ok(out)
}
