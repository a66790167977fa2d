//! One client connection: a reader that decodes and dispatches requests one at a time, in
//! the order they arrive, and a writer that sends the answers in that same order. Requests
//! may be pipelined (the client sends the next before the answer to the last). Handling them
//! one at a time, as Kafka does, lands an idempotent producer's batches in the order it sent
//! them; an answer that waits for an fsync (acks=all) does not hold up the requests behind
//! it, only their answers, which follow it. Other connections run on their own tasks, so a
//! slow client or a long poll stalls nobody else.
//!
//! Memory per connection is bounded: one request is decoded at a time, and answers computed
//! but not yet written hold at most [`BUFFERED_ANSWER_BYTES`] (or one larger answer alone)
//! plus [`PIPELINE_DEPTH`] small acks=all produce answers; past that the reader stops
//! reading, and TCP's back-pressure reaches the client. A client that stops reading its
//! answers is dropped once a write makes no progress for `connections.max.idle.ms`.
//!
//! On server shutdown the reader stops reading, a fetch still waiting for data is dropped
//! (it changes nothing; the client fetches again), any other request in progress finishes
//! and every answer already owed is written, until the shutdown's deadline; then the
//! connection closes whatever is left.
//!
//! A frame over the size limit, an unknown API key, an unsupported version or a body that
//! does not decode is logged and closes this connection; nothing else is touched.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::codec::{self, Decoded, FrameError};
use crate::context::Context;
use crate::dispatch::{self, Answer, Reply};

/// Answers waiting to be written, at most: a client that pipelines more waits for the
/// answers to drain (TCP's back-pressure reaches it).
const PIPELINE_DEPTH: usize = 64;

/// Bytes of computed answers waiting to be written, at most. A larger answer waits until
/// everything before it is written, then goes alone.
const BUFFERED_ANSWER_BYTES: usize = 8 << 20;

/// The server's shutdown signal: `None` while serving, then the time by which every
/// connection must be closed.
pub(crate) type Shutdown = watch::Receiver<Option<Instant>>;

/// An answer in the order of its request.
enum Pending {
    /// Computed, holding its share of the connection's byte budget until written.
    Ready(Answer, OwnedSemaphorePermit),
    /// Waiting for durability (acks=all produce): small, counted by [`PIPELINE_DEPTH`].
    Later(tokio::task::JoinHandle<Answer>),
}

/// Serves one connection until the client closes it, it idles out, it sends something
/// malformed, it stops reading its answers, or the server shuts down.
pub async fn serve(
    ctx: Context,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: Shutdown,
    slot: crate::server::Slot,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(8 << 10, read);
    let (answers, pending) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let budget = Arc::new(Semaphore::new(BUFFERED_ANSWER_BYTES));
    let idle = ctx.config.connections_max_idle;
    let mut writer = tokio::spawn(write_answers(
        write,
        pending,
        Arc::clone(&budget),
        idle,
        peer,
    ));
    read_requests(&ctx, &mut reader, &answers, &budget, &mut shutdown, peer).await;
    // Answers already owed are still sent (a clean shutdown finishes what is in flight),
    // within the write timeout, and within the shutdown's deadline once there is one.
    drop(answers);
    let written = tokio::select! {
        written = &mut writer => written.ok().flatten(),
        () = deadline_passed(&mut shutdown) => {
            tracing::debug!(%peer, "shutdown deadline passed: dropping answers not yet written");
            writer.abort();
            None
        }
    };
    // The slot is given back before the socket closes, so a client that saw the close may
    // connect again at once.
    drop(slot);
    if let Some(mut written) = written {
        let _ = within(idle, written.shutdown()).await;
    }
    drop(reader);
}

/// Reads, handles and queues requests until the connection or the server ends.
async fn read_requests(
    ctx: &Context,
    reader: &mut BufReader<OwnedReadHalf>,
    answers: &mpsc::Sender<Pending>,
    budget: &Arc<Semaphore>,
    shutdown: &mut Shutdown,
    peer: SocketAddr,
) {
    let idle = ctx.config.connections_max_idle;
    loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, codec::read_frame(reader, ctx.config.max_request_bytes)) => frame,
            _ = stopping(shutdown) => {
                tracing::debug!(%peer, "closing connection: server shutting down");
                return;
            }
            // The writer gave up (a failed or stuck write): nothing more can be answered.
            () = answers.closed() => return,
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection (connections.max.idle.ms)");
                return;
            }
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return;
            }
            Ok(Ok(frame)) => frame,
        };
        ctx.capture(&frame);
        let decoded = codec::decode_request(frame);
        let is_fetch = matches!(&decoded, Ok(Decoded::Request(r)) if r.api == ApiKey::Fetch);
        let handled = async {
            match decoded {
                Ok(Decoded::Request(request)) => dispatch::handle(ctx, *request, peer).await,
                Ok(Decoded::ApiVersionsTooNew { correlation_id }) => {
                    Reply::Now(codec::api_versions_too_new(correlation_id).map(Some))
                }
                Err(e) => Reply::Now(Err(e)),
            }
        };
        let reply = if is_fetch {
            // A fetch changes nothing: on shutdown, one waiting for data is not waited for.
            tokio::select! {
                reply = handled => reply,
                _ = stopping(shutdown) => {
                    tracing::debug!(%peer, "server shutting down: dropping a fetch waiting for data");
                    return;
                }
            }
        } else {
            // Anything else has its effect in the broker: let it finish and answer, within
            // the shutdown's deadline.
            tokio::select! {
                reply = handled => reply,
                () = deadline_passed(shutdown) => {
                    tracing::warn!(%peer, "shutdown deadline passed with a request in progress; closing");
                    return;
                }
            }
        };
        let failed = matches!(reply, Reply::Now(Err(_)));
        let queued = async {
            let item = match reply {
                Reply::Now(answer) => {
                    let size = match &answer {
                        Ok(Some(bytes)) => bytes.len().min(BUFFERED_ANSWER_BYTES),
                        _ => 0,
                    };
                    let permits = u32::try_from(size).unwrap_or(u32::MAX);
                    // Waits until the answers before it are written; fails when the writer
                    // has given up (it closes the budget).
                    let permit = Arc::clone(budget).acquire_many_owned(permits).await.ok()?;
                    Pending::Ready(answer, permit)
                }
                Reply::Later(future) => Pending::Later(tokio::spawn(future)),
            };
            answers.send(item).await.ok()
        };
        let sent = tokio::select! {
            sent = queued => sent.is_some(),
            () = deadline_passed(shutdown) => false,
        };
        // The writer logs the failure and closes; nothing after a failed request is read.
        if !sent || failed {
            return;
        }
    }
}

/// Completes once the server starts shutting down, with the deadline it set.
async fn stopping(shutdown: &mut Shutdown) -> Instant {
    match shutdown.wait_for(Option::is_some).await {
        Ok(deadline) => (*deadline).unwrap_or_else(Instant::now),
        // The server is gone without saying: stop now.
        Err(_) => Instant::now(),
    }
}

/// Completes once the server is shutting down and its deadline has passed.
async fn deadline_passed(shutdown: &mut Shutdown) {
    let deadline = stopping(shutdown).await;
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
}

/// Writes the answers in request order; stops at the first failure, or at a write that
/// makes no progress for `idle` (the client stopped reading). Returns the flushed writer
/// for the connection to close, or `None` when it failed (dropping it closed it).
async fn write_answers(
    write: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Pending>,
    budget: Arc<Semaphore>,
    idle: Duration,
    peer: SocketAddr,
) -> Option<BufWriter<OwnedWriteHalf>> {
    let mut writer = BufWriter::with_capacity(8 << 10, write);
    let mut healthy = true;
    while let Some(item) = pending.recv().await {
        let (answer, permit) = match item {
            Pending::Ready(answer, permit) => (answer, Some(permit)),
            Pending::Later(task) => match task.await {
                Ok(answer) => (answer, None),
                Err(e) => {
                    tracing::error!(%peer, error = %e, "a request's handler failed; closing");
                    healthy = false;
                    break;
                }
            },
        };
        match answer {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                if let Err(e) = write_within(&mut writer, &bytes, idle).await {
                    tracing::debug!(%peer, error = %e, "writing a response failed; closing");
                    healthy = false;
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
        drop(permit);
        // Flush when no further answer is ready to join this write.
        if pending.is_empty()
            && let Err(e) = within(idle, writer.flush()).await
        {
            tracing::debug!(%peer, error = %e, "writing a response failed; closing");
            healthy = false;
            break;
        }
    }
    // The reader stops at once: nothing more will be written.
    budget.close();
    drop(pending);
    (healthy && within(idle, writer.flush()).await.is_ok()).then_some(writer)
}

/// Writes all of `bytes`, failing when one write accepts nothing for `idle`.
async fn write_within(
    writer: &mut BufWriter<OwnedWriteHalf>,
    mut bytes: &[u8],
    idle: Duration,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = within(idle, writer.write(bytes)).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = bytes.get(written..).unwrap_or_default();
    }
    Ok(())
}

/// `io` within `idle`, or a TimedOut error naming connections.max.idle.ms.
async fn within<T>(idle: Duration, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(idle, io).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for {} ms (connections.max.idle.ms)",
                idle.as_millis()
            ),
        ))
    })
}
