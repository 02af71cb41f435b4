//! A lake as a table a cluster can scan: one partition per file, read by syllabus's own
//! sources (the same decoding, ids and bad-record errors as a local run), with each row's place
//! in the lake as columns, so every stage above it can be made identical to the local one:
//!
//! - `__file` (uint32): the file's index in the lake (its position in the sorted listing);
//! - `__loc` (uint64): the row's line (jsonl, 1-based) or row (Parquet, 0-based) in its file;
//! - `__batch` (uint32): the local reader's batch the row falls in, so a client can cut a
//!   result into the same batches a local run writes (Parquet pages depend on them);
//! - `id`, and the text column under its own name.
//!
//! The table and its scan carry the file list and read options and nothing else, so the
//! codecs ship them to the scheduler and the executors ([`super::codec`]). Each executor opens
//! the files itself: they must be where every executor can read them (an object store, or a
//! shared filesystem).
//!
//! Memory: one batch of one file per running partition.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{project_schema, DataFusionError};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use crate::source::{BadRecordPolicy, Extras, InputFile, LakeReader, ReadOptions};

pub const COL_FILE: &str = "__file";
pub const COL_LOC: &str = "__loc";
pub const COL_BATCH: &str = "__batch";
pub const COL_RECORD: &str = "__record";
pub const COL_STATS: &str = "__stats";

/// What a scan needs to read a lake, as it travels in a plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LakeSpec {
    /// Path (or URL) and display name of each file, in lake order.
    pub files: Vec<(String, String)>,
    pub text_field: String,
    pub id_field: String,
    pub batch_rows: usize,
    pub max_record_bytes: usize,
    /// `--on-bad-record skip`: bad records are left out (and listed by [`LakeSpec::info`]).
    #[serde(default)]
    pub skip_bad: bool,
    /// Scan what each file holds instead of its rows: `__file`, `__loc` (an order within the
    /// file), `__record` (a bad record's line of the rejects file) or `__stats` (last, the
    /// file's counts and the jsonl fields it has besides id and text, as JSON).
    #[serde(default)]
    pub info: bool,
}

impl LakeSpec {
    /// The spec of a lake the client expanded. Reading standard input is one machine's.
    pub fn new(files: &[InputFile], read: &ReadOptions) -> crate::Result<Self> {
        let files = files
            .iter()
            .map(|f| {
                let path = f
                    .path
                    .to_str()
                    .ok_or_else(|| crate::Error::InvalidArgument(format!("{}: not a UTF-8 path", f.name)))?;
                if f.name == "-" {
                    return Err(crate::Error::InvalidArgument(
                        "standard input cannot be read by a cluster: give files".into(),
                    ));
                }
                Ok((path.to_string(), f.name.clone()))
            })
            .collect::<crate::Result<_>>()?;
        Ok(LakeSpec {
            files,
            text_field: read.text_field.clone(),
            id_field: read.id_field.clone(),
            batch_rows: read.batch_rows,
            max_record_bytes: read.max_record_bytes,
            skip_bad: read.on_bad_record == BadRecordPolicy::Skip,
            info: false,
        })
    }

    /// The same lake, scanned for its files' counts, fields and bad records.
    pub fn info(&self) -> Self {
        LakeSpec { info: true, ..self.clone() }
    }

    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            batch_rows: self.batch_rows,
            on_bad_record: if self.skip_bad { BadRecordPolicy::Skip } else { BadRecordPolicy::Fail },
            max_record_bytes: self.max_record_bytes,
            read_text: true,
            exclude: None,
        }
    }

    fn input_file(&self, i: usize) -> crate::Result<InputFile> {
        let (path, name) = &self.files[i];
        let mut f = InputFile::new(PathBuf::from(path))?;
        f.name = name.clone();
        Ok(f)
    }

    pub fn schema(&self) -> SchemaRef {
        if self.info {
            return Arc::new(Schema::new(vec![
                Field::new(COL_FILE, DataType::UInt32, false),
                Field::new(COL_LOC, DataType::UInt64, false),
                Field::new(COL_RECORD, DataType::Utf8, true),
                Field::new(COL_STATS, DataType::Utf8, true),
            ]));
        }
        Arc::new(Schema::new(vec![
            Field::new(COL_FILE, DataType::UInt32, false),
            Field::new(COL_LOC, DataType::UInt64, false),
            Field::new(COL_BATCH, DataType::UInt32, false),
            Field::new(crate::batch::COL_ID, DataType::Utf8, false),
            Field::new(&self.text_field, DataType::Utf8, false),
        ]))
    }
}

/// The lake as a DataFusion table.
#[derive(Debug)]
pub struct LakeTable {
    pub spec: Arc<LakeSpec>,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.spec.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(LakeScanExec::try_new(self.spec.clone(), projection.cloned(), file_list(self.spec.files.len())?)?))
    }
}

/// The lake's file indices as a plan: partition `i` holds one row, `i`. Ballista hands each
/// task the slice of partitions it runs by restricting the leaves it knows (in-memory ones
/// among them) before it ships a stage, so [`LakeScanExec`] reads its files from this child
/// rather than from partition numbers: a task then reads exactly its own files.
pub fn file_list(files: usize) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Schema::new(vec![Field::new(COL_FILE, DataType::UInt32, false)]));
    let partitions = (0..files.max(1))
        .map(|i| {
            let rows: Vec<u32> = if i < files { vec![i as u32] } else { vec![] };
            RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt32Array::from(rows))]).map(|b| vec![b])
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let config = datafusion::datasource::memory::MemorySourceConfig::try_new(&partitions, schema, None)?;
    Ok(datafusion::datasource::source::DataSourceExec::from_data_source(config))
}

/// Reads the files its input names, one partition after another: with [`file_list`] as its
/// input, partition `i` is file `i`, in the file's order.
#[derive(Debug)]
pub struct LakeScanExec {
    pub spec: Arc<LakeSpec>,
    pub projection: Option<Vec<usize>>,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl LakeScanExec {
    pub fn try_new(
        spec: Arc<LakeSpec>,
        projection: Option<Vec<usize>>,
        input: Arc<dyn ExecutionPlan>,
    ) -> datafusion::error::Result<Self> {
        let schema = project_schema(&spec.schema(), projection.as_ref())?;
        // Within a partition (one file) rows come by (__file, __loc): say so when both are
        // projected, so ORDER BY __file, __loc merges the partitions instead of sorting.
        let mut eq = EquivalenceProperties::new(schema.clone());
        if let (Ok(f), Ok(l)) = (schema.index_of(COL_FILE), schema.index_of(COL_LOC)) {
            let col = |name: &str, i: usize| {
                PhysicalSortExpr::new_default(Arc::new(datafusion::physical_expr::expressions::Column::new(name, i)))
            };
            if let Some(order) = LexOrdering::new(vec![col(COL_FILE, f), col(COL_LOC, l)]) {
                eq.add_orderings(vec![order]);
            }
        }
        let partitions = input.properties().output_partitioning().partition_count();
        let props = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(LakeScanExec { spec, projection, input, schema, props: Arc::new(props) })
    }
}

impl DisplayAs for LakeScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "LakeScanExec: files={}", self.spec.files.len())
    }
}

impl ExecutionPlan for LakeScanExec {
    fn name(&self) -> &str {
        "LakeScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let [input] =
            <[_; 1]>::try_from(children).map_err(|_| DataFusionError::Internal("LakeScanExec has one input".into()))?;
        Ok(Arc::new(LakeScanExec::try_new(self.spec.clone(), self.projection.clone(), input)?))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> datafusion::error::Result<SendableRecordBatchStream> {
        let spec = self.spec.clone();
        let projection = self.projection.clone();
        let schema = self.schema.clone();
        let full = spec.schema();
        let mut files = self.input.execute(partition, ctx)?;
        Ok(crate::sql::tables::blocking_stream(schema, move |send| {
            // The file indices of this partition (one row, from file_list).
            let mut indices = Vec::new();
            while let Some(b) = futures::executor::block_on(futures::StreamExt::next(&mut files)) {
                match b {
                    Ok(b) => match b.column(0).as_any().downcast_ref::<UInt32Array>() {
                        Some(a) => indices.extend(a.values().iter().copied()),
                        None => {
                            send(Err(crate::Error::InvalidArgument(
                                "a lake scan's input is not a list of files".into(),
                            )));
                            return;
                        }
                    },
                    Err(e) => {
                        send(Err(crate::Error::InvalidArgument(e.to_string())));
                        return;
                    }
                }
            }
            for index in indices {
                let i = index as usize;
                if i >= spec.files.len() {
                    send(Err(crate::Error::InvalidArgument(format!("file {i} is not in the lake"))));
                    return;
                }
                let file = match spec.input_file(i) {
                    Ok(f) => f,
                    Err(e) => {
                        send(Err(flat(e)));
                        return;
                    }
                };
                let files = [file];
                let read = spec.read_options();
                if spec.info {
                    match info_of(&files, &read, index, &full) {
                        Ok(b) => {
                            let b = match &projection {
                                Some(p) => b.project(p).map_err(|e| crate::Error::arrow("scanning a lake", e)),
                                None => Ok(b),
                            };
                            if !send(b) {
                                return;
                            }
                        }
                        Err(e) => {
                            send(Err(flat(e)));
                            return;
                        }
                    }
                    continue;
                }
                let reader = LakeReader::new(&files, &read, Extras::none(), None);
                for (batch_no, b) in reader.enumerate() {
                    let b = match b {
                        Ok(b) => b,
                        Err(e) => {
                            send(Err(flat(e)));
                            return;
                        }
                    };
                    let n = b.batch.num_rows();
                    let mut columns: Vec<ArrayRef> = vec![
                        Arc::new(UInt32Array::from(vec![index; n])),
                        Arc::new(UInt64Array::from(b.locations)),
                        Arc::new(UInt32Array::from(vec![batch_no as u32; n])),
                    ];
                    columns.extend(b.batch.columns()[..2].iter().cloned());
                    let batch = RecordBatch::try_new(full.clone(), columns)
                        .and_then(|b| match &projection {
                            Some(p) => b.project(p),
                            None => Ok(b),
                        })
                        .map_err(|e| crate::Error::arrow("scanning a lake", e));
                    if !send(batch) {
                        return;
                    }
                }
            }
        }))
    }
}

/// What a file holds besides its rows, as [`LakeSpec::info`] scans it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    pub read: u64,
    pub kept: u64,
    pub rejected: u64,
    /// Top-level jsonl fields besides id and text, in order of first appearance.
    pub fields: Vec<String>,
}

/// One file's bad records (read with a rejects file in the executor's temporary directory,
/// then handed on line by line) and its [`FileInfo`], as rows.
fn info_of(files: &[InputFile], read: &ReadOptions, index: u32, schema: &SchemaRef) -> crate::Result<RecordBatch> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("a temporary directory", e))?;
    let path = dir.path().join("rejects.jsonl");
    let mut writer = crate::source::RejectWriter::create(&path)?;
    let mut reader = LakeReader::new(files, read, Extras::none(), Some(&mut writer));
    for b in reader.by_ref() {
        b?;
    }
    let stats = reader.into_stats().pop().unwrap_or_default();
    writer.finish()?;
    let info = FileInfo {
        read: stats.read,
        kept: stats.kept,
        rejected: stats.rejected,
        fields: stats.fields_seen.into_iter().collect(),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| crate::Error::io(&path, e))?;
    let mut records: Vec<Option<String>> = text.lines().map(|l| Some(l.to_string())).collect();
    records.push(None);
    let n = records.len();
    let mut stats_col: Vec<Option<String>> = vec![None; n - 1];
    stats_col.push(Some(serde_json::to_string(&info).expect("file info serializes")));
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(UInt32Array::from(vec![index; n])),
            Arc::new(UInt64Array::from_iter_values(0..n as u64)),
            Arc::new(arrow::array::StringArray::from(records)),
            Arc::new(arrow::array::StringArray::from(stats_col)),
        ],
    )
    .map_err(|e| crate::Error::arrow("scanning a lake", e))
}

/// An error as its message: a cluster sends errors to the client as their debug text, which
/// then holds the message as one quoted string ([`super::jobs`] takes it out).
fn flat(e: crate::Error) -> crate::Error {
    crate::Error::InvalidArgument(e.to_string())
}

/// An error of syllabus's own inside DataFusion.
pub fn df_error(e: crate::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
