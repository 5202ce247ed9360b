//! Running a model's plan to its output: staged as Parquet (held in
//! memory for its readers when small), or collected as batches for Delta
//! and partitioned tables.

use super::*;

impl Engine {
    /// Runs a planned table model, casts the result for BI readers and
    /// streams it to a temporary file beside `dest` (not yet published),
    /// registered as `name` for the model's assertions and readers. A
    /// result of at most [`HOLD_BYTES`] (none under a memory limit) is also kept in memory and registered
    /// from there, so that its readers skip decoding it; a larger one is
    /// read back from its file (in the page cache), so that the largest
    /// tables are not held while the models after them run.
    pub async fn stage_table(&self, name: &str, df: DataFrame, dest: &Path) -> Result<TableOutput, ExecError> {
        self.bounded(self.stage_table_unbounded(name, df, dest)).await
    }

    pub(super) async fn stage_table_unbounded(
        &self,
        name: &str,
        df: DataFrame,
        dest: &Path,
    ) -> Result<TableOutput, ExecError> {
        use futures::StreamExt;
        let io = |source| ExecError::Io { path: dest.to_path_buf(), source };
        let schema = publish::bi_schema(df.schema().as_arrow());
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await.map_err(runtime_error)?;
        let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), task).map_err(runtime_error)?;
        let mut sink = publish::ParquetSink::create(&schema, dest).map_err(io)?;
        // Under a memory limit nothing is held: the pool does not see it;
        // on a cluster the executors cannot see wh's memory.
        let hold_bytes = if self.memory_limit.is_some() || self.scratch.is_some() { 0 } else { HOLD_BYTES };
        // (On a cluster not even an empty result: a table in memory cannot
        // be sent to the executors.)
        let mut held: Option<Vec<RecordBatch>> = if self.scratch.is_some() { None } else { Some(Vec::new()) };
        let mut held_size = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(runtime_error)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = publish::to_bi(&batch, &schema).map_err(|e| ExecError::Runtime { message: e.to_string() })?;
            if held.is_some() {
                held_size += batch.get_array_memory_size();
                if held_size > hold_bytes {
                    held = None;
                }
            }
            if let Some(h) = held.as_mut() {
                h.push(batch.clone());
            }
            sink.write(batch).await.map_err(io)?;
        }
        drop(stream);
        let staged = sink.finish().await.map_err(io)?;
        let in_memory = held.is_some();
        match (held, &self.scratch) {
            (Some(batches), _) => self.register_batches(name, schema.clone(), batches)?,
            (None, Some(scratch)) => self.register_file(name, &self.share(scratch, &staged.temp).await?).await?,
            (None, None) => self.register_file(name, &staged.temp.to_string_lossy()).await?,
        }
        Ok(TableOutput { staged, schema, held: in_memory, spilled_bytes: spilled_bytes(plan.as_ref()) })
    }

    /// Registers `batches` in memory as `name`, replacing what had that name.
    pub(super) fn register_batches(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(), ExecError> {
        let table = MemTable::try_new(schema, vec![batches]).map_err(runtime_error)?;
        self.deregister(name);
        self.ctx.register_table(TableReference::bare(name), Arc::new(table)).map_err(runtime_error)?;
        Ok(())
    }

    /// Returns whether `name` is held in memory (not read from a file).
    pub async fn holds(&self, name: &str) -> bool {
        matches!(self.ctx.table_provider(TableReference::bare(name)).await, Ok(p) if p.is::<MemTable>())
    }

    /// Runs a planned table model, casts the result for BI readers, and
    /// registers it in memory as `name` (replacing what had that name, such
    /// as its previous version) for downstream models.
    pub async fn materialize(&self, name: &str, df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>), ExecError> {
        let schema = publish::bi_schema(df.schema().as_arrow());
        let batches = self.bounded(async { df.collect().await.map_err(runtime_error) }).await?;
        let batches: Vec<RecordBatch> = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| publish::to_bi(b, &schema))
            .collect::<Result<_, _>>()
            .map_err(|e| ExecError::Runtime { message: e.to_string() })?;
        match &self.scratch {
            Some(scratch) => self.register_shared(scratch, name, schema.clone(), &batches).await?,
            None => self.register_batches(name, schema.clone(), batches.clone())?,
        }
        Ok((schema, batches))
    }
}
