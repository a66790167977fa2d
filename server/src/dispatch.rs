//! One `match` on the API: each request goes to its handler, and the answer is encoded at the
//! request's version. A handler never fails the connection: errors travel in the response's
//! error codes, as Kafka sends them. Only acks=0 produce has no answer. An acks=all produce
//! that waits for an fsync answers [`Reply::Later`]: the connection handles its next
//! requests while the fsync runs and sends the answers in order.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::codec::{self, FrameError, Request};
use crate::context::Context;
use crate::handlers::{admin, fetch, groups, offsets, produce, setup, txn};

/// A response frame, or `None` for a request that gets none.
pub type Answer = Result<Option<Bytes>, FrameError>;

/// The answer to a request: ready now, or once the data it acknowledges is durable.
pub enum Reply {
    /// The response frame, or `None` for acks=0 produce.
    Now(Answer),
    /// Completes when the answer may be sent.
    Later(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Now(_) => "Reply::Now",
            Self::Later(_) => "Reply::Later",
        })
    }
}

impl Reply {
    /// Waits for the answer.
    pub async fn answer(self) -> Answer {
        match self {
            Self::Now(answer) => answer,
            Self::Later(future) => future.await,
        }
    }
}

/// Handles one request.
pub async fn handle(ctx: &Context, request: Request, peer: std::net::SocketAddr) -> Reply {
    match handle_inner(ctx, request, peer).await {
        Ok(reply) => reply,
        Err(e) => Reply::Now(Err(e)),
    }
}

async fn handle_inner(
    ctx: &Context,
    request: Request,
    peer: std::net::SocketAddr,
) -> Result<Reply, FrameError> {
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api = request.api;
    let client = request.header.client_id.as_ref().map(|c| c.to_string());
    tracing::trace!(?api, version, correlation_id, client = ?client, "request");
    let response = match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(setup::api_versions()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(setup::metadata(ctx, version, r).await),
        RequestKind::DescribeCluster(_) => {
            ResponseKind::DescribeCluster(setup::describe_cluster(ctx))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(setup::find_coordinator(ctx, version, r))
        }
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let appended = produce::append(ctx, version, r).await;
            if acks == 0 {
                return Ok(Reply::Now(Ok(None)));
            }
            if appended.waits() {
                let ctx = ctx.clone();
                return Ok(Reply::Later(Box::pin(async move {
                    let response = ResponseKind::Produce(produce::respond(&ctx, appended).await);
                    codec::encode_response(api, version, correlation_id, &response).map(Some)
                })));
            }
            ResponseKind::Produce(produce::respond(ctx, appended).await)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(ctx, version, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(offsets::list_offsets(ctx, version, r).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(ctx, version, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(ctx, version, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(offsets::delete_records(ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(ctx, r))
        }
        RequestKind::JoinGroup(r) => {
            let caller = groups::Caller {
                client_id: client.clone().unwrap_or_default(),
                host: peer.ip().to_string(),
            };
            ResponseKind::JoinGroup(groups::join(ctx, version, r, caller).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(ctx, version, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(ctx, r).await),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave(ctx, version, r).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(ctx, version, r).await)
        }
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe(ctx, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(ctx, version, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(ctx, r).await),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(txn::init_producer_id(ctx, version, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(ctx, version, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(ctx, version, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(ctx, version, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(ctx, version, r).await),
        _ => {
            // `decode_request` refuses every API not in `versions::SUPPORTED`, so this is a
            // table out of step with this match: close the connection rather than guess.
            return Err(FrameError::Malformed {
                api,
                version,
                reason: "no handler for this API".into(),
            });
        }
    };
    Ok(Reply::Now(
        codec::encode_response(api, version, correlation_id, &response).map(Some),
    ))
}
