//! [`KafkaConfig`]: librdkafka properties, passed through as given, and the timeout of the
//! calls that wait for the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

/// How to reach a Kafka cluster: librdkafka properties (see librdkafka's CONFIGURATION.md),
/// passed through unchanged, plus how long a call waits for the cluster. Its `Debug` output
/// hides the values of secrets (any property whose name holds `password`, `secret` or
/// `sasl.oauthbearer.config`).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    properties: BTreeMap<String, String>,
    timeout: Duration,
}

/// Whether a property's value is a secret, never to be printed.
fn is_secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key == "sasl.oauthbearer.config"
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("properties", &shown)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KafkaConfig {
    /// A config with `bootstrap.servers` set (`HOST:PORT[,HOST:PORT...]`) and a 30 s timeout.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        let mut properties = BTreeMap::new();
        properties.insert("bootstrap.servers".to_string(), bootstrap_servers.into());
        Self {
            properties,
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets any librdkafka property (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, ...). librdkafka checks it when a client is
    /// created: an unknown property or a bad value fails [`KafkaCluster::connect`](crate::KafkaCluster::connect).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// How long a call that needs the cluster (metadata, creating a topic, offsets) waits
    /// before it fails with a timeout. Default 30 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// Every property set, in key order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The timeout of calls that wait for the cluster.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// librdkafka's form of these properties.
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_pass_through_and_the_last_value_wins() {
        let config = KafkaConfig::new("a:1")
            .set("security.protocol", "SASL_SSL")
            .set("bootstrap.servers", "b:2");
        assert_eq!(config.get("bootstrap.servers"), Some("b:2"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        let native = config.client_config();
        assert_eq!(native.get("bootstrap.servers"), Some("b:2"));
        assert_eq!(native.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.properties().count(), 2);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = KafkaConfig::new("a:1")
            .set("sasl.username", "app")
            .set("sasl.password", "hunter2")
            .set("ssl.key.password", "swordfish")
            .set("sasl.oauthbearer.client.secret", "s3cr3t");
        let shown = format!("{config:?}");
        assert!(shown.contains("app"), "{shown}");
        for secret in ["hunter2", "swordfish", "s3cr3t"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
