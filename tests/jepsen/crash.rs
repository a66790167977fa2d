//! Crashes of the broker, and the end of the run. A crash image is the data directory as a
//! kill -9 leaves it (every written byte), or, for power loss, cut back to what was fsynced:
//! each partition loses every batch at or past its durable offset.

use std::time::Duration;

use sluice::log::{IsolationLevel, Producer, ProducerConfig, crash_image};

use super::{GROUP, PARTITIONS, TOPIC, Workload, client_producer, new_reader, open_broker};
use crate::checker::{Event, FinalState, History, read_all};

impl Workload {
    pub(super) fn crash(&mut self, power_loss: bool) {
        let what = if power_loss {
            "power loss"
        } else {
            "broker killed"
        };
        self.history.push(Event::Fault { what: what.into() });
        let image = tempfile::tempdir().expect("tempdir");
        if power_loss {
            crash_image::power_loss(&self.broker, image.path()).expect("power-loss image");
        } else {
            crash_image::copy(&self.dir, image.path()).expect("crash image");
        }
        // Everything attached to the old broker dies with it.
        self.dir = image.path().to_path_buf();
        self.dirs.push(image);
        let broker = open_broker(&self.dir);
        let old = std::mem::replace(&mut self.broker, broker);
        self.client = client_producer(&self.broker);
        self.plain = Producer::new(&self.broker, ProducerConfig::default().with_linger_ms(0))
            .expect("plain producer");
        let log_ends: Vec<i64> = self
            .broker
            .topic_metadata(TOPIC)
            .expect("metadata")
            .partitions
            .iter()
            .map(|p| p.log_end_offset)
            .collect();
        for r in 0..self.readers.len() {
            let (id, committed, mut positions) = {
                let reader = &self.readers[r];
                (reader.id, reader.committed, reader.positions.clone())
            };
            // A read_uncommitted reader may be past what survived: it resumes at the end.
            for (p, position) in positions.iter_mut() {
                if let Some(&end) = log_ends.get(*p as usize) {
                    *position = (*position).min(end);
                }
            }
            self.readers[r] = new_reader(&self.broker, id, committed, positions);
            self.history.push(Event::ReaderRestarted {
                reader: id,
                after_power_loss: power_loss,
            });
        }
        drop(old);
        self.members.clear();
        for a in 0..self.raws.len() {
            self.raws[a].zombie = None;
            self.reinit(a, Duration::from_secs(60));
        }
    }

    /// Ends what is open, loses power once more, and reads everything back.
    pub fn finish(mut self) -> (History, FinalState, Vec<String>) {
        for a in 0..self.raws.len() {
            self.end_raw(a, true);
        }
        self.crash(true);
        let committed = read_all(
            &self.broker,
            TOPIC,
            PARTITIONS,
            IsolationLevel::ReadCommitted,
        );
        let uncommitted = read_all(
            &self.broker,
            TOPIC,
            PARTITIONS,
            IsolationLevel::ReadUncommitted,
        );
        let group_offsets = self
            .broker
            .offset_fetch(GROUP, &[], false)
            .expect("offset fetch")
            .into_iter()
            .filter(|(p, _)| p.topic == TOPIC)
            .filter_map(|(p, o)| o.map(|o| (p.partition, o)))
            .collect();
        let info = self.broker.topic_metadata(TOPIC).expect("metadata");
        for p in &info.partitions {
            if p.last_stable_offset != p.high_watermark {
                self.violation(format!(
                    "partition {} has a transaction open at the end (LSO {} < HW {})",
                    p.partition, p.last_stable_offset, p.high_watermark
                ));
            }
        }
        (
            self.history,
            FinalState {
                committed,
                uncommitted,
                group_offsets,
            },
            self.violations,
        )
    }
}
