//! Topics a topology owns: the repartition topics the DSL adds are declared internal, and
//! an app names them `<application id>-<topic>` on the broker (`Topology::for_application`,
//! which `App::new` applies), so that two apps on one broker never share one, as in Kafka
//! Streams. The `TopologyTestDriver` keeps the names as declared.

use super::{NodeKind, Topology, TopologyBuilder, TopologyError};

impl TopologyBuilder {
    /// Declares `topic` (written by a sink and read by a source of this topology) as the
    /// topology's own: an app prefixes its name with the application id.
    pub fn declare_internal_topic(&mut self, topic: &str) -> &mut Self {
        self.declared_internal.insert(topic.to_string());
        self
    }
}

impl Topology {
    /// This topology as app `application_id` runs it: each declared internal topic named
    /// `<application_id>-<topic>`.
    pub fn for_application(&self, application_id: &str) -> Result<Topology, TopologyError> {
        let mut b = self.builder.clone();
        let declared = std::mem::take(&mut b.declared_internal);
        if declared.is_empty() {
            return Ok(self.clone());
        }
        let rename = |topic: &str| match declared.contains(topic) {
            true => format!("{application_id}-{topic}"),
            false => topic.to_string(),
        };
        b.app_internal = declared.iter().map(|t| rename(t)).collect();
        for (name, node) in &mut b.nodes {
            match &mut node.kind {
                NodeKind::Source { topics } => {
                    for topic in topics.iter_mut() {
                        *topic = rename(topic);
                    }
                }
                NodeKind::Sink { topic } => {
                    let renamed = rename(topic);
                    if renamed != *topic {
                        let retarget = node.typed.retarget.as_ref().ok_or_else(|| {
                            TopologyError::Invalid(format!("sink `{name}` cannot be renamed"))
                        })?;
                        node.typed.factory = retarget(renamed.clone());
                        *topic = renamed;
                    }
                }
                NodeKind::Processor => {}
            }
        }
        b.build()
    }

    /// The repartition topics this app owns (declared internal, named
    /// `<application_id>-<topic>` by [`for_application`](Self::for_application)): the only
    /// topics it may purge. A topic the user named, even one the topology both writes and
    /// reads, is never among them.
    pub fn owned_internal_topics(&self) -> &std::collections::BTreeSet<String> {
        &self.builder.app_internal
    }
}
