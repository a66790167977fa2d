//! A raw Kafka-protocol client for the server's tests: encodes requests with the
//! `kafka-protocol` crate, sends them over TCP, decodes the answers. Also the raw frames the
//! robustness tests need (garbage, oversized sizes, unknown API keys).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_log::{Broker, BrokerConfig};
use sluice_server::{Server, ServerConfig};

/// A broker on a temporary directory served on an ephemeral loopback port.
pub struct Served {
    pub dir: tempfile::TempDir,
    pub broker: Broker,
    pub server: Option<Server>,
    pub addr: SocketAddr,
}

impl Served {
    pub fn start(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(
            dir.path(),
            BrokerConfig::default().with_group_initial_rebalance_delay(Duration::ZERO),
        )
        .expect("open broker");
        let server = Server::bind(broker.clone(), "127.0.0.1:0".parse().expect("addr"), config)
            .expect("bind");
        let addr = server.local_addr();
        Self {
            dir,
            broker,
            server: Some(server),
            addr,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5));
        }
        let _ = self.broker.close();
    }
}

/// One connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Self {
            stream,
            next_correlation: 1,
        }
    }

    /// Encodes and sends a request; returns its correlation id.
    pub fn send(&mut self, api: ApiKey, version: i16, body: &RequestKind) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).expect("write");
        correlation
    }

    /// Reads one response frame and decodes it as `api` at `version`.
    pub fn receive(&mut self, api: ApiKey, version: i16) -> (ResponseHeader, ResponseKind) {
        let mut frame = self.read_frame().expect("response frame");
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .expect("response header");
        let body = ResponseKind::decode(api, &mut frame, version).expect("response body");
        (header, body)
    }

    /// Sends and waits for the answer.
    pub fn call(&mut self, api: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        let correlation = self.send(api, version, &body);
        let (header, response) = self.receive(api, version);
        assert_eq!(header.correlation_id, correlation);
        response
    }

    /// One raw frame, or `None` when the server closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Whether the server has closed the connection (reads hit end of file).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// A v2 record batch with `records` (key, value) built by sluice's own codec.
pub fn batch(records: &[(&str, &str)]) -> Bytes {
    let mut builder = sluice_log::batch::BatchBuilder::new();
    for (k, v) in records {
        builder.append(0, Some(k.as_bytes()), Some(v.as_bytes()), &[]);
    }
    builder.build().expect("batch")
}

/// Reads a big-endian i32 at the front of `b`.
pub fn peek_i32(b: &Bytes) -> i32 {
    let mut c = b.clone();
    c.get_i32()
}
