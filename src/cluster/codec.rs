//! Ballista's plan codecs, extended with syllabus's nodes and functions: the lake table and its
//! scan, and the scorers with their state (a DSIR model's counts, a ZIP-FIT target set, the
//! Gumbel seed and per-file offsets). Everything else goes to Ballista's own codecs.
//!
//! syllabus's encodings start with a byte no protobuf message starts with (0xff: field 31,
//! wire type 7, which does not exist), then `SYL`, a kind byte and a JSON body.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::lake::{LakeScanExec, LakeSpec, LakeTable};
use super::udf::{DsirCounts, GumbelKey, ScorerUdf};
use crate::score::dsir::DsirParams;

const MAGIC: &[u8; 4] = b"\xffSYL";

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    LakeScan = 1,
    LakeTable = 2,
    /// A method's fitted scorer: its name and state ([`crate::methods::decode`]).
    Scorer = 3,
    Gumbel = 6,
    DsirCounts = 7,
}

fn put(buf: &mut Vec<u8>, kind: Kind, body: &[u8]) {
    buf.extend_from_slice(MAGIC);
    buf.push(kind as u8);
    buf.extend_from_slice(body);
}

/// The kind and body of a syllabus encoding, or None for anything else.
fn ours(buf: &[u8]) -> Option<(u8, &[u8])> {
    (buf.len() > MAGIC.len() && buf.starts_with(MAGIC)).then(|| (buf[MAGIC.len()], &buf[MAGIC.len() + 1..]))
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| DataFusionError::Internal(format!("encoding a syllabus plan node: {e}")))
}

fn from_json<'a, T: serde::Deserialize<'a>>(b: &'a [u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| DataFusionError::Internal(format!("decoding a syllabus plan node: {e}")))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScanBody {
    spec: LakeSpec,
    projection: Option<Vec<usize>>,
}

/// A scorer: its name, a NUL, its state.
fn scorer_body(name: &str, state: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(name.len() + 1 + state.len());
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(state);
    b
}

#[derive(serde::Serialize, serde::Deserialize)]
struct GumbelBody {
    seed: u32,
    offsets: Vec<u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CountsBody {
    params: DsirParams,
    limit: Option<u64>,
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let inner: &dyn std::any::Any = node.inner().as_ref();
    if let Some(f) = inner.downcast_ref::<ScorerUdf>() {
        let state = f.scorer.state().map_err(super::lake::df_error)?;
        put(buf, Kind::Scorer, &scorer_body(f.scorer.name(), &state));
    } else if let Some(f) = inner.downcast_ref::<GumbelKey>() {
        put(buf, Kind::Gumbel, &json(&GumbelBody { seed: f.seed, offsets: f.offsets.to_vec() })?);
    } else {
        return Ok(false);
    }
    Ok(true)
}

fn decode_udf(kind: u8, body: &[u8]) -> Result<Arc<ScalarUDF>> {
    let ext = super::lake::df_error;
    let udf = match kind {
        k if k == Kind::Scorer as u8 => {
            let nul = body.iter().position(|&b| b == 0).ok_or_else(|| {
                DataFusionError::Internal("decoding a syllabus plan node: a scorer without a name".into())
            })?;
            let name = std::str::from_utf8(&body[..nul])
                .map_err(|e| DataFusionError::Internal(format!("decoding a syllabus plan node: {e}")))?;
            let state = &body[nul + 1..];
            let scorer = crate::dedup::decode_scorer(name, state)
                .or_else(|| crate::kmeans::decode_scorer(name, state))
                .unwrap_or_else(|| crate::methods::decode(name, state));
            ScalarUDF::new_from_impl(ScorerUdf::new(scorer.map_err(ext)?))
        }
        k if k == Kind::Gumbel as u8 => {
            let b: GumbelBody = from_json(body)?;
            ScalarUDF::new_from_impl(GumbelKey::new(b.seed, b.offsets))
        }
        k => return Err(DataFusionError::Internal(format!("unknown syllabus function kind {k}"))),
    };
    Ok(Arc::new(udf))
}

fn encode_udaf(node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let inner: &dyn std::any::Any = node.inner().as_ref();
    match inner.downcast_ref::<DsirCounts>() {
        Some(f) => {
            put(buf, Kind::DsirCounts, &json(&CountsBody { params: f.params.clone(), limit: f.per_file_limit })?);
            Ok(true)
        }
        None => Ok(false),
    }
}

fn decode_udaf(kind: u8, body: &[u8]) -> Result<Arc<AggregateUDF>> {
    if kind != Kind::DsirCounts as u8 {
        return Err(DataFusionError::Internal(format!("unknown syllabus aggregate kind {kind}")));
    }
    let b: CountsBody = from_json(body)?;
    Ok(Arc::new(AggregateUDF::new_from_impl(DsirCounts::new(b.params, b.limit))))
}

/// The function methods both codecs share: syllabus's functions, else the inner codec's.
macro_rules! function_codec {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
            match ours(buf) {
                Some((k, body)) => decode_udf(k, body),
                None => self.inner.try_decode_udf(name, buf),
            }
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
            if encode_udf(node, buf)? {
                return Ok(());
            }
            self.inner.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
            match ours(buf) {
                Some((k, body)) => decode_udaf(k, body),
                None => self.inner.try_decode_udaf(name, buf),
            }
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
            if encode_udaf(node, buf)? {
                return Ok(());
            }
            self.inner.try_encode_udaf(node, buf)
        }
    };
}

/// The logical codec: Ballista's, plus the lake table and the functions.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match ours(buf) {
            Some((k, body)) if k == Kind::LakeTable as u8 => {
                Ok(Arc::new(LakeTable { spec: Arc::new(from_json(body)?) }))
            }
            Some((k, _)) => Err(DataFusionError::Internal(format!("unknown syllabus table kind {k}"))),
            None => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(t) = any.downcast_ref::<LakeTable>() {
            put(buf, Kind::LakeTable, &json(t.spec.as_ref())?);
            return Ok(());
        }
        self.inner.try_encode_table_provider(table_ref, node, buf).map_err(|e| {
            DataFusionError::Plan(format!(
                "the table {table_ref} cannot be sent to a cluster ({e}): with --cluster, syllabus sql runs over Parquet files and directories (and the selected, scores and curriculum tables of syllabus outputs); {}",
                crate::sql::NOT_SENDABLE
            ))
        })
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    function_codec!();
}

/// The physical codec: Ballista's (shuffles and its own nodes), plus the lake scan and the
/// functions.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        conv: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match ours(buf) {
            Some((k, body)) if k == Kind::LakeScan as u8 => {
                let b: ScanBody = from_json(body)?;
                let [input] = inputs else {
                    return Err(DataFusionError::Internal("a lake scan has one input".into()));
                };
                Ok(Arc::new(LakeScanExec::try_new(Arc::new(b.spec), b.projection, input.clone())?))
            }
            Some((k, _)) => Err(DataFusionError::Internal(format!("unknown syllabus plan kind {k}"))),
            None => self.inner.try_decode(buf, inputs, ctx, conv),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        conv: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(scan) = any.downcast_ref::<LakeScanExec>() {
            put(
                buf,
                Kind::LakeScan,
                &json(&ScanBody { spec: scan.spec.as_ref().clone(), projection: scan.projection.clone() })?,
            );
            return Ok(());
        }
        self.inner.try_encode(node, buf, conv)
    }

    function_codec!();
}
