//! sluice-server: the log served over Kafka's wire protocol, so every Kafka client works
//! against it (librdkafka, the Java client, kafka-python, kafkajs, kcat...).
//!
//! A [`Server`] listens on a TCP address and answers Kafka requests from a
//! [`sluice_log::Broker`]: produce and fetch (record batches pass through as the client
//! encoded them and as they are stored), offsets, topics, consumer groups (Kafka's classic
//! protocol) and transactions. The server is a codec and a dispatcher: `kafka-protocol`
//! decodes each request at the client's version, one `match` calls the broker, and the answer
//! is encoded at the same version. Calls that may block run on tokio's blocking pool;
//! fetches that wait for data, and JoinGroup and SyncGroup calls waiting at their barrier,
//! wait without a thread.
//!
//! A Rust program serves its own embedded broker like this:
//!
//! ```
//! use sluice_log::{Broker, BrokerConfig};
//! use sluice_server::{Server, ServerConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerConfig::default())?;
//! let server = Server::bind(broker.clone(), "127.0.0.1:0".parse()?, ServerConfig::default())?;
//! println!("Kafka clients can connect to {}", server.local_addr());
//! server.shutdown(std::time::Duration::from_secs(5));
//! broker.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Limits, as Kafka sets them: a request over `socket.request.max.bytes` or one that does not
//! decode closes its connection (and only that one); an array over 1,000,000 elements is
//! refused before anything is allocated; a batch over `message.max.bytes` is
//! MESSAGE_TOO_LARGE; a bad CRC is CORRUPT_MESSAGE; a fetch gets at most `fetch.max.bytes`
//! (the first batch found always goes out whole); idle connections, and peers that stop
//! reading their answers, close after `connections.max.idle.ms`; answers waiting to be
//! written are bounded per connection; connections per IP address are capped.

pub mod codec;
pub mod config;
mod connection;
mod context;
mod dispatch;
pub mod errors;
mod frame_handler;
mod handlers;
mod server;
mod topic_configs;
mod topic_id;
pub mod versions;

pub use config::ServerConfig;
pub use frame_handler::{FrameHandler, FrameOutcome};
pub use server::{Server, ServerError};
