//! A thin async wrapper over the generated Milvus gRPC client: only the calls apksift makes,
//! with status checks and the few response fields it reads.

use std::time::Duration;

use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::proto::common::{self, ConsistencyLevel, KeyValuePair, MsgBase};
use crate::proto::milvus::{self as pb, milvus_service_client::MilvusServiceClient};
use crate::proto::schema::{self, FieldData};
use crate::{Error, Result};

#[derive(Clone)]
pub(crate) struct Client {
    svc: MilvusServiceClient<Channel>,
    db: String,
}

fn base() -> Option<MsgBase> {
    Some(MsgBase::default())
}

#[allow(deprecated)]
fn check(what: &str, st: Option<&common::Status>) -> Result<()> {
    match st {
        Some(s) if s.code != 0 || s.error_code != 0 => Err(Error::Milvus(format!(
            "{what}: {} (code {}, error_code {})",
            s.reason, s.code, s.error_code
        ))),
        _ => Ok(()),
    }
}

fn rpc(what: &str, e: tonic::Status) -> Error {
    Error::Milvus(format!("{what}: {} ({:?})", e.message(), e.code()))
}

pub(crate) fn kv(k: &str, v: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: k.to_string(),
        value: v.into(),
    }
}

/// How a read is made consistent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTs {
    pub level: ConsistencyLevel,
    pub guarantee: u64,
}

impl Client {
    pub(crate) async fn connect(endpoint: String, db: String, timeout: Duration) -> Result<Client> {
        let ch = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| Error::Invalid(format!("{endpoint}: {e}")))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| Error::Milvus(format!("connect {endpoint}: {e}")))?;
        let svc = MilvusServiceClient::new(ch)
            .max_decoding_message_size(512 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(Client { svc, db })
    }

    pub(crate) async fn version(&self) -> Result<String> {
        let r = self
            .svc
            .clone()
            .get_version(pb::GetVersionRequest::default())
            .await
            .map_err(|e| rpc("GetVersion", e))?
            .into_inner();
        check("GetVersion", r.status.as_ref())?;
        Ok(r.version)
    }

    /// A fresh timestamp from the server's timestamp oracle.
    pub(crate) async fn alloc_timestamp(&self) -> Result<u64> {
        let r = self
            .svc
            .clone()
            .alloc_timestamp(pb::AllocTimestampRequest::default())
            .await
            .map_err(|e| rpc("AllocTimestamp", e))?
            .into_inner();
        check("AllocTimestamp", r.status.as_ref())?;
        Ok(r.timestamp)
    }

    pub(crate) async fn has_collection(&self, name: &str) -> Result<bool> {
        let r = self
            .svc
            .clone()
            .has_collection(pb::HasCollectionRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: name.into(),
                time_stamp: 0,
            })
            .await
            .map_err(|e| rpc("HasCollection", e))?
            .into_inner();
        check("HasCollection", r.status.as_ref())?;
        Ok(r.value)
    }

    pub(crate) async fn show_collections(&self) -> Result<Vec<String>> {
        let r = self
            .svc
            .clone()
            .show_collections(pb::ShowCollectionsRequest {
                base: base(),
                db_name: self.db.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("ShowCollections", e))?
            .into_inner();
        check("ShowCollections", r.status.as_ref())?;
        Ok(r.collection_names)
    }

    pub(crate) async fn describe(&self, name: &str) -> Result<schema::CollectionSchema> {
        let r = self
            .svc
            .clone()
            .describe_collection(pb::DescribeCollectionRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: name.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("DescribeCollection", e))?
            .into_inner();
        check(&format!("DescribeCollection {name}"), r.status.as_ref())?;
        r.schema
            .ok_or_else(|| Error::Milvus(format!("DescribeCollection {name}: no schema")))
    }

    pub(crate) async fn create_collection(&self, s: schema::CollectionSchema) -> Result<()> {
        let name = s.name.clone();
        let st = self
            .svc
            .clone()
            .create_collection(pb::CreateCollectionRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: name.clone(),
                schema: s.encode_to_vec(),
                shards_num: 1,
                consistency_level: ConsistencyLevel::Session as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("CreateCollection", e))?
            .into_inner();
        check(&format!("CreateCollection {name}"), Some(&st))
    }

    pub(crate) async fn drop_collection(&self, name: &str) -> Result<()> {
        let st = self
            .svc
            .clone()
            .drop_collection(pb::DropCollectionRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: name.into(),
            })
            .await
            .map_err(|e| rpc("DropCollection", e))?
            .into_inner();
        check(&format!("DropCollection {name}"), Some(&st))
    }

    pub(crate) async fn create_index(
        &self,
        coll: &str,
        field: &str,
        index_type: &str,
        params: serde_json::Value,
    ) -> Result<()> {
        let st = self
            .svc
            .clone()
            .create_index(pb::CreateIndexRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                field_name: field.into(),
                extra_params: vec![
                    kv("index_type", index_type),
                    kv("metric_type", "HAMMING"),
                    kv("params", params.to_string()),
                ],
                index_name: format!("{field}_idx"),
            })
            .await
            .map_err(|e| rpc("CreateIndex", e))?
            .into_inner();
        check(&format!("CreateIndex {coll}.{field}"), Some(&st))
    }

    pub(crate) async fn describe_index(&self, coll: &str) -> Result<Vec<(String, String)>> {
        let r = self
            .svc
            .clone()
            .describe_index(pb::DescribeIndexRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("DescribeIndex", e))?
            .into_inner();
        check(&format!("DescribeIndex {coll}"), r.status.as_ref())?;
        let mut out = Vec::new();
        for d in r.index_descriptions {
            for p in d.params {
                out.push((p.key, p.value));
            }
        }
        Ok(out)
    }

    /// Seals the growing segments of a collection (they get indexed in the background).
    pub(crate) async fn flush(&self, coll: &str) -> Result<u64> {
        let r = self
            .svc
            .clone()
            .flush(pb::FlushRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_names: vec![coll.into()],
            })
            .await
            .map_err(|e| rpc("Flush", e))?
            .into_inner();
        check(&format!("Flush {coll}"), r.status.as_ref())?;
        let segs = r
            .coll_seg_i_ds
            .get(coll)
            .map(|a| a.data.clone())
            .unwrap_or_default();
        let flush_ts = r.coll_flush_ts.get(coll).copied().unwrap_or(0);
        for _ in 0..6000 {
            let st = self
                .svc
                .clone()
                .get_flush_state(pb::GetFlushStateRequest {
                    segment_i_ds: segs.clone(),
                    flush_ts,
                    db_name: self.db.clone(),
                    collection_name: coll.into(),
                })
                .await
                .map_err(|e| rpc("GetFlushState", e))?
                .into_inner();
            check(&format!("GetFlushState {coll}"), st.status.as_ref())?;
            if st.flushed {
                return Ok(flush_ts);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Milvus(format!("{coll}: not flushed after 600 s")))
    }

    /// Waits until the index of `field` covers every sealed segment (`GetIndexState`:
    /// deprecated in newer protos, the call Milvus 2.3 answers).
    #[allow(deprecated)]
    pub(crate) async fn wait_index(&self, coll: &str, field: &str) -> Result<()> {
        for _ in 0..36_000 {
            let r = self
                .svc
                .clone()
                .get_index_state(pb::GetIndexStateRequest {
                    base: base(),
                    db_name: self.db.clone(),
                    collection_name: coll.into(),
                    field_name: field.into(),
                    index_name: String::new(),
                })
                .await
                .map_err(|e| rpc("GetIndexState", e))?
                .into_inner();
            check(&format!("GetIndexState {coll}"), r.status.as_ref())?;
            match common::IndexState::try_from(r.state) {
                Ok(common::IndexState::Finished) => return Ok(()),
                Ok(common::IndexState::Failed) => {
                    return Err(Error::Milvus(format!("index of {coll}: {}", r.fail_reason)));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(Error::Milvus(format!(
            "index of {coll}: not built after an hour"
        )))
    }

    /// The segments the query nodes hold for a collection: (segment ID, state, rows, index
    /// ID; 0 when the segment is searched without an index).
    pub(crate) async fn query_segments(&self, coll: &str) -> Result<Vec<(i64, i32, i64, i64)>> {
        let r = self
            .svc
            .clone()
            .get_query_segment_info(pb::GetQuerySegmentInfoRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
            })
            .await
            .map_err(|e| rpc("GetQuerySegmentInfo", e))?
            .into_inner();
        check(&format!("GetQuerySegmentInfo {coll}"), r.status.as_ref())?;
        Ok(r.infos
            .into_iter()
            .map(|i| (i.segment_id, i.state, i.num_rows, i.index_id))
            .collect())
    }

    /// The IDs of a collection's flushed segments (data coordinator).
    pub(crate) async fn flushed_segments(&self, coll: &str) -> Result<Vec<i64>> {
        let r = self
            .svc
            .clone()
            .get_persistent_segment_info(pb::GetPersistentSegmentInfoRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
            })
            .await
            .map_err(|e| rpc("GetPersistentSegmentInfo", e))?
            .into_inner();
        check(
            &format!("GetPersistentSegmentInfo {coll}"),
            r.status.as_ref(),
        )?;
        Ok(r.infos
            .into_iter()
            .filter(|i| i.state == common::SegmentState::Flushed as i32)
            .map(|i| i.segment_id)
            .collect())
    }

    /// Waits until the query nodes hold every flushed segment of a collection as a sealed
    /// segment. After a flush, Milvus hands the flushed segments (with their index, once
    /// built) over to the query nodes in the background, 10-20 s on embedded Milvus 2.3.5;
    /// until then searches still read the growing copies, exhaustively.
    pub(crate) async fn wait_sealed_loaded(&self, coll: &str) -> Result<()> {
        for _ in 0..3000 {
            let flushed = self.flushed_segments(coll).await?;
            let loaded: std::collections::HashSet<i64> = self
                .query_segments(coll)
                .await?
                .into_iter()
                .map(|s| s.0)
                .collect();
            if flushed.iter().all(|id| loaded.contains(id)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::Milvus(format!(
            "{coll}: flushed segments not loaded by the query nodes after 600 s"
        )))
    }

    /// Loads a collection and waits until it is fully loaded.
    pub(crate) async fn load(&self, coll: &str) -> Result<()> {
        let st = self
            .svc
            .clone()
            .load_collection(pb::LoadCollectionRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                replica_number: 0,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("LoadCollection", e))?
            .into_inner();
        check(&format!("LoadCollection {coll}"), Some(&st))?;
        for _ in 0..1200 {
            let r = self
                .svc
                .clone()
                .get_loading_progress(pb::GetLoadingProgressRequest {
                    base: base(),
                    collection_name: coll.into(),
                    db_name: self.db.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| rpc("GetLoadingProgress", e))?
                .into_inner();
            check(&format!("GetLoadingProgress {coll}"), r.status.as_ref())?;
            if r.progress >= 100 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Milvus(format!("{coll}: not loaded after 120 s")))
    }

    /// Upserts rows; returns the write timestamp.
    pub(crate) async fn upsert(&self, coll: &str, fields: Vec<FieldData>, n: usize) -> Result<u64> {
        let r = self
            .svc
            .clone()
            .upsert(pb::UpsertRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                fields_data: fields,
                num_rows: n as u32,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("Upsert", e))?
            .into_inner();
        check(&format!("Upsert {coll}"), r.status.as_ref())?;
        Ok(r.timestamp)
    }

    /// Deletes the rows matching `expr`; returns the write timestamp.
    pub(crate) async fn delete(&self, coll: &str, expr: String) -> Result<u64> {
        let r = self
            .svc
            .clone()
            .delete(pb::DeleteRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                expr,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("Delete", e))?
            .into_inner();
        check(&format!("Delete {coll}"), r.status.as_ref())?;
        Ok(r.timestamp)
    }

    pub(crate) async fn query(
        &self,
        coll: &str,
        expr: String,
        output_fields: Vec<String>,
        limit: Option<usize>,
        ts: ReadTs,
    ) -> Result<Vec<FieldData>> {
        let mut params = Vec::new();
        if let Some(l) = limit {
            params.push(kv("limit", l.to_string()));
        }
        let r = self
            .svc
            .clone()
            .query(pb::QueryRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                expr,
                output_fields,
                query_params: params,
                guarantee_timestamp: ts.guarantee,
                consistency_level: ts.level as i32,
                use_default_consistency: false,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("Query", e))?
            .into_inner();
        check(&format!("Query {coll}"), r.status.as_ref())?;
        Ok(r.fields_data)
    }

    /// Range search on the binary vector field `code`: per query, up to `limit` hits with
    /// `lo <= hamming < radius`, nearest first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn range_search(
        &self,
        coll: &str,
        codes: Vec<Vec<u8>>,
        lo: u32,
        radius: u32,
        limit: usize,
        expr: String,
        nprobe: u32,
        output_fields: Vec<String>,
        ts: ReadTs,
    ) -> Result<schema::SearchResultData> {
        let nq = codes.len() as i64;
        let group = common::PlaceholderGroup {
            placeholders: vec![common::PlaceholderValue {
                tag: "$0".into(),
                r#type: common::PlaceholderType::BinaryVector as i32,
                values: codes,
                ..Default::default()
            }],
        };
        let mut p = serde_json::json!({ "nprobe": nprobe, "radius": radius });
        if lo > 0 {
            p["range_filter"] = serde_json::json!(lo);
        }
        let r = self
            .svc
            .clone()
            .search(pb::SearchRequest {
                base: base(),
                db_name: self.db.clone(),
                collection_name: coll.into(),
                dsl: expr,
                dsl_type: common::DslType::BoolExprV1 as i32,
                search_input: Some(pb::search_request::SearchInput::PlaceholderGroup(
                    group.encode_to_vec(),
                )),
                output_fields,
                search_params: vec![
                    kv("anns_field", "code"),
                    kv("topk", limit.to_string()),
                    kv("metric_type", "HAMMING"),
                    kv("params", p.to_string()),
                    kv("round_decimal", "-1"),
                ],
                nq,
                guarantee_timestamp: ts.guarantee,
                consistency_level: ts.level as i32,
                use_default_consistency: false,
                ..Default::default()
            })
            .await
            .map_err(|e| rpc("Search", e))?
            .into_inner();
        check(&format!("Search {coll}"), r.status.as_ref())?;
        Ok(r.results.unwrap_or_default())
    }
}
