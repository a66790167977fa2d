//! sluice patch (see vendor/README.md in sluice): batch consumption for assign-mode
//! consumers, on librdkafka's `rd_kafka_consume_batch_queue`.
//!
//! [`BaseConsumer::poll`](super::BaseConsumer::poll) returns one message per call, and each
//! call pays librdkafka's queue wake-up, its poll-interval clock reads and an `Arc` per
//! message. A batch takes every ready message in one call.
//!
//! A batch is served by librdkafka's callback path (`RD_KAFKA_Q_CB_RETURN`), not its event
//! path: the statistics and log operations queued among the messages (with a `group.id`,
//! the main queue is forwarded to the consumer queue) go to the configuration's callbacks,
//! not to events. Global errors there are logged (LOG_ERR, through the log callback), not
//! passed to `ClientContext::error`; consumer errors come as messages ([`BatchMessage::error`]).
//! [`set_batch_callbacks`] points those callbacks at the client's context, so a batch
//! delivers them to [`ClientContext::stats_raw`] and [`ClientContext::log`] exactly as
//! [`BaseConsumer::poll`](super::BaseConsumer::poll) does. Without it, statistics would be
//! dropped and logs printed to stderr by librdkafka's default log callback.
//!
//! Only for consumers that never subscribe and never commit through the consumer: the
//! callback path performs an unassign for a rebalance when no rebalance callback is set,
//! and an offset-commit reply hits an assertion that aborts the process.
//!
//! librdkafka 2.12 moves a partition's position past every message a batch returns,
//! errors included: after an error carrying the fetch position X, `rd_kafka_position`
//! says X + 1 although record X is still to come (fixed upstream after 2.12). A caller
//! that reads positions must put the partition back to X itself.

use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use rdkafka_sys as rdsys;
use rdkafka_sys::types::*;

use crate::client::{ClientContext, NativeQueue};
use crate::config::{NativeClientConfig, RDKafkaLogLevel};
use crate::error::{IsError, KafkaError, KafkaResult};
use crate::message::{native_timestamp, BorrowedHeaders, Message, Timestamp};
use crate::util;

/// Sets the statistics and log callbacks that a batch's callback path calls, forwarding to
/// the context of type `C` (the client's opaque, which `Client::new` sets to it).
pub(crate) fn set_batch_callbacks<C: ClientContext>(config: &NativeClientConfig) {
    unsafe {
        rdsys::rd_kafka_conf_set_stats_cb(config.ptr(), Some(native_stats_cb::<C>));
        rdsys::rd_kafka_conf_set_log_cb(config.ptr(), Some(native_log_cb::<C>));
    }
}

unsafe extern "C" fn native_stats_cb<C: ClientContext>(
    _client: *mut RDKafka,
    json: *mut c_char,
    json_len: usize,
    opaque: *mut c_void,
) -> c_int {
    if !opaque.is_null() && !json.is_null() {
        let context = &*(opaque as *const C);
        let json = std::slice::from_raw_parts(json as *const u8, json_len);
        // A panic must not unwind into C.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| context.stats_raw(json)));
    }
    0 // librdkafka frees the JSON
}

unsafe extern "C" fn native_log_cb<C: ClientContext>(
    client: *const RDKafka,
    level: c_int,
    fac: *const c_char,
    buf: *const c_char,
) {
    // Without a client (a configuration error before one exists) there is no context.
    if client.is_null() {
        return;
    }
    let opaque = rdsys::rd_kafka_opaque(client);
    if opaque.is_null() || fac.is_null() || buf.is_null() {
        return;
    }
    let context = &*(opaque as *const C);
    let fac = CStr::from_ptr(fac).to_string_lossy();
    let message = CStr::from_ptr(buf).to_string_lossy();
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        context.log(RDKafkaLogLevel::from_int(level), fac.trim(), message.trim())
    }));
}

/// Messages asked of librdkafka per call: the pointer array lives on the stack.
const CHUNK: usize = 256;

/// Hands up to `max` messages from `queue`, in order, to `each`, waiting up to `timeout_ms`
/// for the first chunk (0: no wait; librdkafka waits the whole timeout unless the chunk
/// fills). Further chunks are taken, without waiting, while the previous one came full.
/// How many were handed over.
pub(crate) fn consume_batch<'a>(
    queue: &'a NativeQueue,
    timeout_ms: i32,
    max: usize,
    mut each: impl FnMut(BatchMessage<'a>),
) -> KafkaResult<usize> {
    let mut raw: [*mut RDKafkaMessage; CHUNK] = [ptr::null_mut(); CHUNK];
    let mut handed = 0;
    let mut wait = timeout_ms;
    while handed < max {
        let ask = (max - handed).min(CHUNK);
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(queue.ptr(), wait, raw.as_mut_ptr(), ask)
        };
        if n < 0 {
            return Err(KafkaError::MessageConsumption(
                unsafe { rdsys::rd_kafka_last_error() }.into(),
            ));
        }
        let n = n as usize;
        for &message in &raw[..n] {
            if let Some(ptr) = NonNull::new(message) {
                each(BatchMessage {
                    ptr,
                    _owner: PhantomData,
                });
            }
        }
        handed += n;
        if n < ask {
            break;
        }
        wait = 0;
    }
    Ok(handed)
}

/// A message from a batch: it owns its librdkafka message, destroyed when dropped, and
/// cannot outlive the consumer.
pub struct BatchMessage<'a> {
    ptr: NonNull<RDKafkaMessage>,
    _owner: PhantomData<&'a u8>,
}

impl BatchMessage<'_> {
    /// The error this message carries instead of a record, if any (librdkafka hands
    /// consumer errors over as messages). `__FATAL` becomes `MessageConsumptionFatal`.
    pub fn error(&self) -> Option<KafkaError> {
        let err = self.native().err;
        if !err.is_error() {
            return None;
        }
        Some(match err {
            rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                KafkaError::PartitionEOF(self.native().partition)
            }
            rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__FATAL => {
                KafkaError::MessageConsumptionFatal(err.into())
            }
            e => KafkaError::MessageConsumption(e.into()),
        })
    }

    /// The message's topic and partition; `None` for an error that concerns no
    /// partition.
    pub fn topic_partition(&self) -> Option<(&str, i32)> {
        if self.native().rkt.is_null() {
            return None;
        }
        Some((self.topic(), self.native().partition))
    }

    fn native(&self) -> &RDKafkaMessage {
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for BatchMessage<'_> {
    fn drop(&mut self) {
        unsafe { rdsys::rd_kafka_message_destroy(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for BatchMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchMessage")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl Message for BatchMessage<'_> {
    type Headers = BorrowedHeaders;

    fn key(&self) -> Option<&[u8]> {
        unsafe { util::ptr_to_opt_slice(self.native().key, self.native().key_len) }
    }

    fn payload(&self) -> Option<&[u8]> {
        unsafe { util::ptr_to_opt_slice(self.native().payload, self.native().len) }
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        util::ptr_to_opt_mut_slice(self.native().payload, self.native().len)
    }

    /// Empty for an error that concerns no topic.
    fn topic(&self) -> &str {
        if self.native().rkt.is_null() {
            return "";
        }
        unsafe {
            CStr::from_ptr(rdsys::rd_kafka_topic_name(self.native().rkt))
                .to_str()
                .expect("Topic name is not valid UTF-8")
        }
    }

    fn partition(&self) -> i32 {
        self.native().partition
    }

    fn offset(&self) -> i64 {
        self.native().offset
    }

    fn timestamp(&self) -> Timestamp {
        native_timestamp(self.ptr.as_ptr())
    }

    fn headers(&self) -> Option<&BorrowedHeaders> {
        let mut headers = ptr::null_mut();
        let err = unsafe { rdsys::rd_kafka_message_headers(self.ptr.as_ptr(), &mut headers) };
        if err.is_error() || headers.is_null() {
            None
        } else {
            Some(unsafe { BorrowedHeaders::from_native_ptr(self, headers) })
        }
    }
}

unsafe impl Send for BatchMessage<'_> {}
unsafe impl Sync for BatchMessage<'_> {}
