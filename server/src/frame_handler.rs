//! The server's request path without a socket: a raw frame in, a raw response out. The
//! fuzzer drives it with mutated frames, and tests use it to check that no input, however
//! malformed, panics or harms the broker.

use std::time::Duration;

use bytes::Bytes;
use sluice_log::Broker;

use crate::codec::{self, Decoded, FrameError};
use crate::config::ServerConfig;
use crate::context::Context;
use crate::server::{AppendWatcher, ServerError, context};

/// What became of one frame.
#[derive(Debug)]
pub enum FrameOutcome {
    /// The response frame (size prefix included).
    Response(Bytes),
    /// A request that gets no response (acks=0 produce).
    NoResponse,
    /// The server would close the connection, for this reason.
    Closed(FrameError),
    /// The request was still waiting (a long poll, a join barrier) when the time ran out.
    TimedOut,
}

/// Handles frames as a connection of a [`crate::Server`] would, on its own runtime.
#[derive(Debug)]
pub struct FrameHandler {
    runtime: tokio::runtime::Runtime,
    ctx: Context,
    appends: AppendWatcher,
}

impl FrameHandler {
    /// A handler serving `broker`.
    pub fn new(broker: Broker, config: ServerConfig) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let appends = AppendWatcher::start(broker.clone());
        let ctx = context(broker, config, "127.0.0.1".into(), 9092, appends.receiver());
        Ok(Self {
            runtime,
            ctx,
            appends,
        })
    }

    /// Decodes and handles one frame (without its size prefix), waiting at most `timeout`.
    pub fn handle(&self, frame: Bytes, timeout: Duration) -> FrameOutcome {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        self.runtime.block_on(async {
            let decoded = match codec::decode_request(frame) {
                Ok(d) => d,
                Err(e) => return FrameOutcome::Closed(e),
            };
            let request = match decoded {
                Decoded::Request(r) => r,
                Decoded::ApiVersionsTooNew { correlation_id } => {
                    return match codec::api_versions_too_new(correlation_id) {
                        Ok(b) => FrameOutcome::Response(b),
                        Err(e) => FrameOutcome::Closed(e),
                    };
                }
            };
            let reply = crate::dispatch::handle(&self.ctx, *request, peer);
            match tokio::time::timeout(timeout, async { reply.await.answer().await }).await {
                Err(_) => FrameOutcome::TimedOut,
                Ok(Ok(Some(bytes))) => FrameOutcome::Response(bytes),
                Ok(Ok(None)) => FrameOutcome::NoResponse,
                Ok(Err(e)) => FrameOutcome::Closed(e),
            }
        })
    }
}

impl Drop for FrameHandler {
    fn drop(&mut self) {
        self.appends.stop();
    }
}
