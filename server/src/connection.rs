//! One client connection: read a frame, decode it, dispatch it, write the response, in
//! order. Requests may be pipelined (the client sends the next before the answer to the
//! last); they are handled one at a time per connection, as Kafka handles them, so the
//! batches of one idempotent producer land in the order it sent them. Other connections run
//! on their own tasks, so a slow client or a long poll stalls nobody else.
//!
//! A frame over the size limit, an unknown API key, an unsupported version or a body that
//! does not decode is logged and closes this connection; nothing else is touched.

use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::codec::{self, Decoded, FrameError};
use crate::context::Context;
use crate::dispatch;

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
    let mut reader = BufReader::with_capacity(64 << 10, read);
    let mut writer = BufWriter::with_capacity(64 << 10, write);
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
        let response = match codec::decode_request(frame) {
            Ok(Decoded::Request(request)) => {
                let client = request.header.client_id.clone();
                match dispatch::handle(&ctx, *request, peer).await {
                    Ok(response) => response,
                    Err(e) => {
                        tracing::warn!(%peer, client = ?client, error = %e, "closing connection");
                        break;
                    }
                }
            }
            Ok(Decoded::ApiVersionsTooNew { correlation_id }) => {
                match codec::api_versions_too_new(correlation_id) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "closing connection");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        if let Some(bytes) = response {
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::debug!(%peer, error = %e, "writing a response failed; closing");
                break;
            }
            if let Err(e) = writer.flush().await {
                tracing::debug!(%peer, error = %e, "writing a response failed; closing");
                break;
            }
        }
    }
    drop(slot);
    let _ = writer.shutdown().await;
}
