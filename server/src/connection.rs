//! One client connection: a reader that decodes and dispatches requests one at a time, in
//! the order they arrive, and a writer that sends the answers in that same order. Requests
//! may be pipelined (the client sends the next before the answer to the last). Handling them
//! one at a time, as Kafka does, lands an idempotent producer's batches in the order it sent
//! them; an answer that waits for an fsync (acks=all) does not hold up the requests behind
//! it, only their answers, which follow it. Other connections run on their own tasks, so a
//! slow client or a long poll stalls nobody else.
//!
//! A frame over the size limit, an unknown API key, an unsupported version or a body that
//! does not decode is logged and closes this connection; nothing else is touched.

use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};

use crate::codec::{self, Decoded, FrameError};
use crate::context::Context;
use crate::dispatch::{self, Reply};

/// Answers waiting to be written, at most: a client that pipelines more waits for the
/// answers to drain (TCP's back-pressure reaches it).
const PIPELINE_DEPTH: usize = 64;

/// An answer in the order of its request: ready, or still waiting for durability.
type Pending = tokio::task::JoinHandle<dispatch::Answer>;

/// Serves one connection until the client closes it, it idles out, it sends something
/// malformed, or the server shuts down.
pub async fn serve(
    ctx: Context,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    slot: crate::server::Slot,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(8 << 10, read);
    let (answers, pending) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let writer = tokio::spawn(write_answers(write, pending, peer));
    let idle = ctx.config.connections_max_idle;
    loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, codec::read_frame(&mut reader, ctx.config.max_request_bytes)) => frame,
            _ = shutdown.wait_for(|stop| *stop) => {
                tracing::debug!(%peer, "closing connection: server shutting down");
                break;
            }
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Err(FrameError::Closed)) => break,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
            Ok(Ok(frame)) => frame,
        };
        ctx.capture(&frame);
        let reply = match codec::decode_request(frame) {
            Ok(Decoded::Request(request)) => dispatch::handle(&ctx, *request, peer).await,
            Ok(Decoded::ApiVersionsTooNew { correlation_id }) => {
                Reply::Now(codec::api_versions_too_new(correlation_id).map(Some))
            }
            Err(e) => Reply::Now(Err(e)),
        };
        let failed = matches!(reply, Reply::Now(Err(_)));
        let task = match reply {
            Reply::Now(answer) => tokio::spawn(std::future::ready(answer)),
            Reply::Later(future) => tokio::spawn(future),
        };
        // The writer logs the failure and closes; nothing after a failed request is read.
        if answers.send(task).await.is_err() || failed {
            break;
        }
    }
    // Answers already owed are still sent (a clean shutdown finishes what is in flight).
    drop(answers);
    let _ = writer.await;
    drop(slot);
}

/// Writes the answers in request order; stops at the first failure.
async fn write_answers(
    write: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Pending>,
    peer: SocketAddr,
) {
    let mut writer = BufWriter::with_capacity(8 << 10, write);
    while let Some(task) = pending.recv().await {
        let answer = match task.await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(%peer, error = %e, "a request's handler failed; closing");
                break;
            }
        };
        match answer {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "writing a response failed; closing");
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
        // Flush when no further answer is ready to join this write.
        if pending.is_empty()
            && let Err(e) = writer.flush().await
        {
            tracing::debug!(%peer, error = %e, "writing a response failed; closing");
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
