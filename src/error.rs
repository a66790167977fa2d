//! [`Error`]: the one error a program built on sluice returns. Every crate's error converts
//! into it, so `?` works across the log, the runtime, the DSL and the server in a `main` that
//! returns `Result<(), sluice::Error>`. The original error stays inside, with its source chain.

/// Any error of sluice's crates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the log: topics, partitions, producers, consumers, transactions, groups.
    #[error(transparent)]
    Log(#[from] sluice_log::Error),
    /// From the runtime: serdes, state stores, processors, apps.
    #[error(transparent)]
    Runtime(#[from] sluice_runtime::Error),
    /// A topology (built by hand or by the DSL) that cannot run.
    #[error(transparent)]
    Topology(#[from] sluice_runtime::topology::TopologyError),
    /// From the Kafka wire-protocol server: binding, serving.
    #[error(transparent)]
    Server(#[from] sluice_server::ServerError),
    /// A filesystem or network error outside the crates above.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{Error, Result};
    use crate::prelude::*;

    fn opens_and_builds(dir: &std::path::Path) -> Result<()> {
        let broker = Broker::open(dir, BrokerConfig::default())?; // sluice_log::Error
        broker.create_topic("in", TopicConfig::default())?;
        let b = StreamBuilder::new();
        b.stream::<String, String>("in").to("out");
        let topology = b.build()?; // TopologyError
        App::new("app", topology, AppConfig::default())?; // sluice_runtime::Error
        broker.create_topic("in", TopicConfig::default())?; // exists: fails here
        Ok(())
    }

    #[test]
    fn question_mark_works_across_crates_and_keeps_the_cause() {
        let dir = tempfile::tempdir().map_err(Error::from);
        let dir = match dir {
            Ok(dir) => dir,
            Err(e) => panic!("tempdir: {e}"),
        };
        match opens_and_builds(dir.path()) {
            Err(Error::Log(sluice_log::Error::TopicExists { topic })) => assert_eq!(topic, "in"),
            other => panic!("expected the log's TopicExists, got {other:?}"),
        }
    }
}
