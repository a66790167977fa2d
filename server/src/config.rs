//! The server's settings, named and defaulted as Kafka names and defaults them.

use std::time::Duration;

use sluice_log::TopicConfig;

/// How the server listens and what it allows. Build with `Default` and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `host:port` clients are told to connect to (Metadata, FindCoordinator), when it
    /// differs from the address bound (`advertised.listeners`). `None`: the bound address.
    pub advertised_listener: Option<(String, u16)>,
    /// Create a topic when a client asks for its metadata and allows it
    /// (`auto.create.topics.enable`). Default true.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of a CreateTopics request that asks for -1
    /// (`num.partitions`). Default 1.
    pub num_partitions: i32,
    /// The largest request accepted, in bytes (`socket.request.max.bytes`). A larger frame
    /// closes the connection. Default 100 MiB.
    pub max_request_bytes: usize,
    /// The largest record batch accepted (`message.max.bytes`), unless the topic's
    /// `max.message.bytes` is smaller. Default 1 MiB + 12.
    pub message_max_bytes: usize,
    /// A connection with no request for this long is closed (`connections.max.idle.ms`).
    /// A connection whose answer makes no progress for this long (the client stopped
    /// reading) is closed too. Default 10 minutes.
    pub connections_max_idle: Duration,
    /// Connections accepted from one IP address at once (`max.connections.per.ip`);
    /// further ones are closed at once. Default 10,000.
    pub max_connections_per_ip: usize,
    /// The most record bytes one Fetch response carries (`fetch.max.bytes`): a client's
    /// larger `max_bytes` is lowered to it. As in Kafka, the first batch found still goes out
    /// whole when it is larger, so a consumer is never stuck behind one big batch.
    /// Default 55 MiB.
    pub fetch_max_bytes: usize,
    /// Worker threads of the server's runtime. Default: the number of CPUs.
    pub worker_threads: usize,
    /// The config a new topic starts from (auto-created or by CreateTopics) before the
    /// request's own configs apply: the broker-level topic defaults, e.g. its fsync policy.
    pub topic_defaults: TopicConfig,
    /// The most partitions a topic may have (CreateTopics, CreatePartitions): each is a
    /// directory and open files, so a request for two billion is refused, not attempted.
    /// Default 10,000.
    pub max_partitions_per_topic: i32,
    /// Writes the first frames of each API and version received to this directory (one
    /// file each, named `API-VERSION-CRC.bin`): the fuzzer's seeds are captured this way
    /// from real clients. `None` (the default) captures nothing.
    pub capture_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            advertised_listener: None,
            auto_create_topics: true,
            num_partitions: 1,
            max_request_bytes: 100 << 20,
            message_max_bytes: (1 << 20) + 12,
            connections_max_idle: Duration::from_secs(600),
            max_connections_per_ip: 10_000,
            fetch_max_bytes: 55 << 20,
            worker_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            topic_defaults: TopicConfig::default(),
            max_partitions_per_topic: 10_000,
            capture_dir: None,
        }
    }
}

impl ServerConfig {
    /// Sets the address clients are told to connect to.
    pub fn with_advertised_listener(mut self, host: impl Into<String>, port: u16) -> Self {
        self.advertised_listener = Some((host.into(), port));
        self
    }
    /// Turns topic auto-creation on or off.
    pub fn with_auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }
    /// Sets the partitions of auto-created topics.
    pub fn with_num_partitions(mut self, partitions: i32) -> Self {
        self.num_partitions = partitions;
        self
    }
    /// Sets the largest request accepted.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }
    /// Sets the largest record batch accepted.
    pub fn with_message_max_bytes(mut self, bytes: usize) -> Self {
        self.message_max_bytes = bytes;
        self
    }
    /// Sets how long an idle connection stays open.
    pub fn with_connections_max_idle(mut self, idle: Duration) -> Self {
        self.connections_max_idle = idle;
        self
    }
    /// Sets how many connections one IP address may hold.
    pub fn with_max_connections_per_ip(mut self, max: usize) -> Self {
        self.max_connections_per_ip = max;
        self
    }
    /// Sets the most record bytes one Fetch response carries (at least 1).
    pub fn with_fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes.max(1);
        self
    }
    /// Sets the config new topics start from.
    pub fn with_topic_defaults(mut self, defaults: TopicConfig) -> Self {
        self.topic_defaults = defaults;
        self
    }
    /// Captures received frames into `dir` (fuzzing seeds).
    pub fn with_capture_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.capture_dir = Some(dir.into());
        self
    }
    /// Sets the worker threads of the server's runtime.
    pub fn with_worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }
}
