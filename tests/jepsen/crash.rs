//! Crashes of the broker, and the end of the run. A crash image is the data directory as a
//! kill -9 leaves it (every written byte), or, for power loss, cut back to what was fsynced:
//! each partition loses every batch at or past its durable offset.

use std::path::Path;
use std::time::Duration;

use sluice::log::batch::BatchHeader;
use sluice::log::{Consumer, ConsumerConfig, IsolationLevel, Producer, ProducerConfig};

use super::{GROUP, PARTITIONS, TOPIC, Workload, client_producer, new_reader, open_broker, tp};
use crate::checker::{Event, FinalState, History};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Cuts a partition directory back to the batches below `durable`.
fn cut_to_durable(dir: &Path, durable: i64) {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut cut = false;
    for log in logs {
        if cut {
            std::fs::remove_file(&log).expect("remove");
            continue;
        }
        let bytes = std::fs::read(&log).expect("read");
        let mut pos = 0usize;
        while let Ok(h) = BatchHeader::parse(&bytes[pos..]) {
            if h.base_offset >= durable || pos + h.total_len() > bytes.len() {
                break;
            }
            pos += h.total_len();
        }
        if pos < bytes.len() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .expect("open")
                .set_len(pos as u64)
                .expect("cut");
            cut = true;
        }
    }
}

impl Workload {
    pub(super) fn crash(&mut self, power_loss: bool) {
        let what = if power_loss {
            "power loss"
        } else {
            "broker killed"
        };
        self.history.push(Event::Fault { what: what.into() });
        let durable: Vec<(String, i32, i64)> = self
            .broker
            .metadata()
            .into_iter()
            .flat_map(|t| {
                t.partitions
                    .into_iter()
                    .map(move |p| (t.name.clone(), p.partition, p.durable_offset))
            })
            .collect();
        let image = tempfile::tempdir().expect("tempdir");
        copy_dir(&self.dir, image.path());
        if power_loss {
            for (topic, partition, offset) in durable {
                cut_to_durable(&image.path().join(format!("{topic}-{partition}")), offset);
            }
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

    fn read_all(&self, isolation: IsolationLevel) -> Vec<(i32, i64, String)> {
        let mut consumer = Consumer::new(
            &self.broker,
            ConsumerConfig::default().with_isolation(isolation),
        );
        consumer
            .assign((0..PARTITIONS).map(tp).collect())
            .expect("assign");
        let mut out = Vec::new();
        let mut idle = 0;
        while idle < 3 {
            let records = consumer.poll(Duration::from_millis(5)).expect("poll");
            if records.is_empty() {
                idle += 1;
            }
            out.extend(records.into_iter().map(|r| {
                (
                    r.partition,
                    r.offset,
                    String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned(),
                )
            }));
        }
        out
    }

    /// Ends what is open, loses power once more, and reads everything back.
    pub fn finish(mut self) -> (History, FinalState, Vec<String>) {
        for a in 0..self.raws.len() {
            self.end_raw(a, true);
        }
        self.crash(true);
        let committed = self.read_all(IsolationLevel::ReadCommitted);
        let uncommitted = self.read_all(IsolationLevel::ReadUncommitted);
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
