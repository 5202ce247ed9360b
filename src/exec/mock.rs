//! A session of its own for a unit test: the engine's settings and
//! functions, none of its tables, and mocked relations in their place.

use super::*;

impl Engine {
    /// Returns a new session with this one's settings and functions (the
    /// DuckDB dialect's included) and no tables, run locally.
    pub fn sibling(&self) -> Engine {
        let ctx = SessionContext::new_with_config(self.ctx.copied_config());
        let state = self.ctx.state();
        for f in state.scalar_functions().values() {
            ctx.register_udf(f.as_ref().clone());
        }
        for f in state.aggregate_functions().values() {
            ctx.register_udaf(f.as_ref().clone());
        }
        for f in state.window_functions().values() {
            ctx.register_udwf(f.as_ref().clone());
        }
        Engine { ctx, view_sizes: Arc::default(), memory_limit: None, scratch: None, job_timeout: None }
    }

    /// Registers `batches` as the relation `"schema"."name"` (a source
    /// table) or `"name"`.
    pub fn register_mock(
        &self,
        schema: Option<&str>,
        name: &str,
        rows: (SchemaRef, Vec<RecordBatch>),
    ) -> Result<(), ExecError> {
        let table = MemTable::try_new(rows.0, vec![rows.1]).map_err(runtime_error)?;
        let reference = match schema {
            Some(s) => {
                self.ensure_schema(s);
                TableReference::partial(s, name)
            }
            None => TableReference::bare(name),
        };
        let _ = self.ctx.deregister_table(reference.clone());
        self.ctx.register_table(reference, Arc::new(table)).map_err(runtime_error)?;
        Ok(())
    }
}
