//! Kafka frames on a connection: a big-endian i32 size, then a request header and body. This
//! module reads one frame within the size limit, decodes its header and body with the
//! `kafka-protocol` crate at the client's version, and encodes a response at the same version.
//! Anything malformed becomes a [`FrameError`]; nothing here panics on input.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::versions;

/// Why a frame could not be read or decoded. The connection is closed after any of these.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed by the client")]
    Closed,
    /// Reading from the socket failed.
    #[error("reading a request failed: {0}")]
    Io(#[from] std::io::Error),
    /// The size prefix is negative or above `socket.request.max.bytes`.
    #[error("request of {size} bytes is over the limit of {max} bytes (socket.request.max.bytes)")]
    TooLarge {
        /// The size the client announced.
        size: i64,
        /// The limit.
        max: usize,
    },
    /// The frame is too short to hold a request header.
    #[error("request of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key this server does not know.
    #[error("unknown API key {api_key} (version {version}, correlation id {correlation_id})")]
    UnknownApi {
        /// The key.
        api_key: i16,
        /// The version asked for.
        version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// A known API at a version this server does not implement.
    #[error("{api:?} version {version} is not supported (supported: {supported})")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// What is supported, as text.
        supported: String,
    },
    /// The header or body did not decode at its version.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// A response could not be encoded (a bug: a field out of its version's range).
    #[error("encoding the {api:?} v{version} response failed: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What the encoder said.
        reason: String,
    },
}

/// Reads one frame's body (without the size prefix). `Closed` when the peer closed cleanly
/// before a new frame started.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size)
        .ok()
        .filter(|&n| n <= max_bytes)
        .ok_or(FrameError::TooLarge {
            size: i64::from(size),
            max: max_bytes,
        })?;
    let mut body = BytesMut::zeroed(len);
    reader.read_exact(&mut body).await?;
    Ok(body.freeze())
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// Its header (API key, version, correlation id, client id).
    pub header: RequestHeader,
    /// Its API.
    pub api: ApiKey,
    /// Its body.
    pub body: RequestKind,
}

/// What [`decode_request`] makes of a frame.
#[derive(Debug)]
pub enum Decoded {
    /// A request to dispatch.
    Request(Box<Request>),
    /// ApiVersions at a version above what is supported (KIP-511): answered in v0 format
    /// with UNSUPPORTED_VERSION and the supported list.
    ApiVersionsTooNew {
        /// The request's correlation id.
        correlation_id: i32,
    },
}

/// Decodes a frame's header and body. Bytes left after the body are ignored, as Kafka
/// ignores them (librdkafka 2.0.2 sends ListGroups v3+ with an extra trailing field).
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| FrameError::UnknownApi {
        api_key,
        version,
        correlation_id,
    })?;
    let Some((min, max)) = versions::supported(api) else {
        return Err(FrameError::UnknownApi {
            api_key,
            version,
            correlation_id,
        });
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions && version > max {
            return Ok(Decoded::ApiVersionsTooNew { correlation_id });
        }
        return Err(FrameError::UnsupportedVersion {
            api,
            version,
            supported: format!("{min}..={max}"),
        });
    }
    let malformed = |reason: String| FrameError::Malformed {
        api,
        version,
        reason,
    };
    let header_version = api.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| malformed(e.to_string()))?;
    let body =
        RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
    Ok(Decoded::Request(Box::new(Request { header, api, body })))
}

/// Encodes a response frame (size prefix, header, body) at the request's version.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, FrameError> {
    let fail = |e: String| FrameError::Encode {
        api,
        version,
        reason: e,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| fail(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| fail(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| fail("response over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The KIP-511 answer to an ApiVersions request newer than supported: v0 format,
/// UNSUPPORTED_VERSION, and the supported list, so the client can retry at a version it
/// and the server share.
pub fn api_versions_too_new(correlation_id: i32) -> Result<Bytes, FrameError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(crate::handlers::setup::api_version_list());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    )
}
