//! The workload's steps: transactions through raw broker calls and through the client
//! producer, plain writes, polls, and the faults that need no restart.

use std::time::Duration;

use sluice::log::{Error, GroupMetadata, ProducerRecord};

use super::{End, GROUP, MEMBERS_GROUP, OpenTxn, PARTITIONS, TOPIC, Workload, tp, txn_batch};
use crate::checker::{Event, Outcome};

fn fenced(e: &Error) -> bool {
    matches!(
        e,
        Error::ProducerFenced { .. } | Error::TxnProducerFenced { .. } | Error::InvalidTxnState(_)
    )
}

impl Workload {
    pub(super) fn raw(&mut self, a: usize, writes: &[i32], offsets: bool, end: End) {
        if self.raws[a].open.is_none() {
            self.next_txn += 1;
            self.raws[a].open = Some(OpenTxn {
                txn: self.next_txn,
                partitions: Default::default(),
                offsets: false,
            });
            self.raws[a].last_end = None;
        }
        let txn = self.raws[a].open.as_ref().map_or(0, |o| o.txn);
        for &p in writes {
            let (name, id) = (self.raws[a].name.clone(), self.raws[a].id);
            let added = self.raws[a]
                .open
                .as_ref()
                .is_some_and(|o| o.partitions.contains(&p));
            if !added {
                if let Err(e) = self.broker.add_partitions_to_txn(&name, id, &[tp(p)]) {
                    if !fenced(&e) {
                        self.violation(format!("add_partitions_to_txn failed unexpectedly: {e}"));
                    }
                    return self.reinit(a, Duration::from_secs(60));
                }
                if let Some(open) = self.raws[a].open.as_mut() {
                    open.partitions.insert(p);
                }
            }
            let value = self.value(&format!("r{a}-t{txn}"));
            let seq = self.raws[a].seqs.get(&p).copied().unwrap_or(0);
            let batch = txn_batch(id, seq, &value);
            match self.broker.produce(TOPIC, p, batch.clone()) {
                Ok(out) if !out.duplicate => {
                    self.raws[a].seqs.insert(p, seq + 1);
                    self.raws[a].last_batch = Some((p, batch));
                    self.history.push(Event::TxnWrite {
                        txn,
                        partition: p,
                        value,
                    });
                }
                Ok(_) => {
                    self.violation(format!("a new batch of {value} was taken for a duplicate"))
                }
                Err(e) => {
                    if !fenced(&e) {
                        self.violation(format!("a transactional produce failed unexpectedly: {e}"));
                    }
                    return self.reinit(a, Duration::from_secs(60));
                }
            }
        }
        if offsets {
            let (name, id) = (self.raws[a].name.clone(), self.raws[a].id);
            let offs: Vec<(i32, i64)> = (0..PARTITIONS)
                .map(|p| (p, txn as i64 * 10 + i64::from(p)))
                .collect();
            let sent = self
                .broker
                .add_offsets_to_txn(&name, id, GROUP)
                .and_then(|()| {
                    let with_topic: Vec<_> = offs.iter().map(|(p, o)| (tp(*p), *o)).collect();
                    self.broker
                        .txn_offset_commit(&name, id, GROUP, -1, "", &with_topic)
                });
            match sent {
                Ok(()) => {
                    if let Some(open) = self.raws[a].open.as_mut() {
                        open.offsets = true;
                    }
                    self.history.push(Event::TxnOffsets { txn, offsets: offs });
                }
                Err(e) => {
                    if !fenced(&e) {
                        self.violation(format!("sending offsets failed unexpectedly: {e}"));
                    }
                    return self.reinit(a, Duration::from_secs(60));
                }
            }
        }
        if end == End::Open {
            return;
        }
        self.end_raw(a, end == End::Commit);
    }

    pub(super) fn end_raw(&mut self, a: usize, commit: bool) {
        let Some(open) = self.raws[a].open.take() else {
            return;
        };
        if open.partitions.is_empty() && !open.offsets {
            // Nothing was enlisted: there is no transaction at the coordinator to end.
            self.history.push(Event::Ended {
                txn: open.txn,
                outcome: Outcome::Aborted,
            });
            return;
        }
        let (name, id) = (self.raws[a].name.clone(), self.raws[a].id);
        if commit {
            self.history.push(Event::CommitAsked { txn: open.txn });
        }
        match self.broker.end_txn(&name, id, commit) {
            Ok(next) => {
                let outcome = if commit {
                    Outcome::Committed
                } else {
                    Outcome::Aborted
                };
                self.history.push(Event::Ended {
                    txn: open.txn,
                    outcome,
                });
                let raw = &mut self.raws[a];
                raw.last_end = Some((id, commit, next));
                raw.id = next;
                raw.seqs.clear();
            }
            Err(e) => {
                if !fenced(&e) {
                    self.violation(format!("end_txn failed unexpectedly: {e}"));
                }
                self.raws[a].open = Some(open);
                self.reinit(a, Duration::from_secs(60));
            }
        }
    }

    pub(super) fn client_txn(&mut self, writes: &[i32], offsets: bool, commit: bool) {
        self.next_txn += 1;
        let txn = self.next_txn;
        if let Err(e) = self.client.begin_transaction() {
            return self.violation(format!("begin_transaction failed: {e}"));
        }
        let mut pending = Vec::new();
        for &p in writes {
            let value = self.value(&format!("c-t{txn}"));
            match self
                .client
                .send(ProducerRecord::new(TOPIC, value.clone()).with_partition(p))
            {
                Ok(delivery) => pending.push((p, value, delivery)),
                Err(e) => self.violation(format!("client send failed: {e}")),
            }
        }
        if offsets {
            let offs: Vec<(i32, i64)> = (0..PARTITIONS)
                .map(|p| (p, txn as i64 * 10 + i64::from(p)))
                .collect();
            let with_topic: Vec<_> = offs.iter().map(|(p, o)| (tp(*p), *o)).collect();
            let group = GroupMetadata {
                group_id: GROUP.into(),
                generation: -1,
                member_id: String::new(),
            };
            match self.client.send_offsets_to_transaction(&with_topic, &group) {
                Ok(()) => self.history.push(Event::TxnOffsets { txn, offsets: offs }),
                Err(e) => self.violation(format!("client send_offsets_to_transaction failed: {e}")),
            }
        }
        if commit {
            self.history.push(Event::CommitAsked { txn });
        }
        let ended = if commit {
            self.client.commit_transaction()
        } else {
            self.client.abort_transaction()
        };
        for (p, value, delivery) in pending {
            if delivery.wait().is_ok() {
                self.history.push(Event::TxnWrite {
                    txn,
                    partition: p,
                    value,
                });
            }
        }
        let outcome = match (&ended, commit) {
            (Ok(()), true) => Outcome::Committed,
            (Ok(()), false) => Outcome::Aborted,
            (Err(e), _) => {
                self.violation(format!("client end of transaction failed: {e}"));
                Outcome::Unknown
            }
        };
        self.history.push(Event::Ended { txn, outcome });
    }

    pub(super) fn plain(&mut self, partitions: &[i32]) {
        for &p in partitions {
            let value = self.value("plain");
            let acked = self
                .plain
                .send(ProducerRecord::new(TOPIC, value.clone()).with_partition(p))
                .and_then(|d| d.wait());
            match acked {
                Ok(_) => self.history.push(Event::PlainWrite {
                    partition: p,
                    value,
                }),
                Err(e) => self.violation(format!("plain produce failed: {e}")),
            }
        }
    }

    pub(super) fn poll(&mut self, r: usize) {
        let reader = &mut self.readers[r];
        match reader.consumer.poll(Duration::from_millis(1)) {
            Ok(records) => {
                let records: Vec<(i32, i64, String)> = records
                    .into_iter()
                    .map(|rec| {
                        reader.positions.insert(rec.partition, rec.offset + 1);
                        (
                            rec.partition,
                            rec.offset,
                            String::from_utf8_lossy(&rec.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect();
                let (id, committed) = (reader.id, reader.committed);
                self.history.push(Event::Poll {
                    reader: id,
                    committed,
                    records,
                });
            }
            Err(e) => self.violation(format!("poll failed: {e}")),
        }
    }

    /// The actor dies mid-transaction; a new instance fences it and aborts its transaction.
    /// The old identity lives on as a zombie.
    pub(super) fn kill(&mut self, a: usize) {
        self.history.push(Event::Fault {
            what: format!("raw-{a} killed"),
        });
        self.raws[a].zombie = Some(self.raws[a].id);
        self.reinit(a, Duration::from_secs(60));
    }

    /// A zombie on the old epoch keeps sending and tries to commit: all refused.
    pub(super) fn zombie(&mut self, a: usize) {
        let Some(old) = self.raws[a].zombie else {
            return;
        };
        let name = self.raws[a].name.clone();
        let value = self.value("zombie");
        if let Ok(out) = self.broker.produce(TOPIC, 0, txn_batch(old, 0, &value)) {
            self.violation(format!(
                "a zombie's write {value} was accepted at {}",
                out.base_offset
            ));
        }
        if self
            .broker
            .add_partitions_to_txn(&name, old, &[tp(1)])
            .is_ok()
        {
            self.violation("a zombie could add partitions".into());
        }
        if self.broker.end_txn(&name, old, true).is_ok() {
            self.violation("a zombie could commit".into());
        }
    }

    /// Holds back a batch of the open transaction, or delivers one held from an earlier
    /// transaction, which must be refused.
    pub(super) fn delayed(&mut self, a: usize) {
        let current = self.raws[a].open.as_ref().map(|o| o.txn);
        match self.raws[a].delayed.take() {
            Some((txn, p, batch)) if Some(txn) != current => {
                if let Ok(out) = self.broker.produce(TOPIC, p, batch) {
                    self.violation(format!(
                        "a produce delayed from ended transaction {txn} was accepted at {p}/{}",
                        out.base_offset
                    ));
                }
            }
            Some(held) => self.raws[a].delayed = Some(held),
            None => {
                let Some(open) = self.raws[a].open.as_ref() else {
                    return;
                };
                let Some(&p) = open.partitions.iter().next() else {
                    return;
                };
                let txn = open.txn;
                let value = self.value(&format!("delayed-t{txn}"));
                let raw = &self.raws[a];
                let seq = raw.seqs.get(&p).copied().unwrap_or(0);
                self.raws[a].delayed = Some((txn, p, txn_batch(raw.id, seq, &value)));
            }
        }
    }

    /// Sends the last batch again: recognised as a duplicate while its transaction is open.
    pub(super) fn duplicate_produce(&mut self, a: usize) {
        let Some((p, batch)) = self.raws[a].last_batch.clone() else {
            return;
        };
        let same_txn = self.raws[a].open.is_some() && self.raws[a].last_end.is_none();
        match self.broker.produce(TOPIC, p, batch) {
            Ok(out) if !out.duplicate => self.violation(format!(
                "a duplicated produce was appended again at {p}/{}",
                out.base_offset
            )),
            Ok(_) => {}
            Err(e) if same_txn && !fenced(&e) => {
                self.violation(format!("a duplicated produce failed: {e}"))
            }
            Err(_) => {}
        }
    }

    /// Sends the last end_txn again: answered the same while nothing happened since.
    pub(super) fn duplicate_end(&mut self, a: usize) {
        let Some((id, commit, answer)) = self.raws[a].last_end else {
            return;
        };
        let name = self.raws[a].name.clone();
        match self.broker.end_txn(&name, id, commit) {
            Ok(again) if again == answer => {}
            Ok(other) => self.violation(format!(
                "a retried end_txn answered {other:?}, first {answer:?}"
            )),
            Err(e) => self.violation(format!("a retried end_txn failed: {e}")),
        }
    }

    /// A transaction outlives its timeout: the broker aborts it and fences its producer.
    pub(super) fn timeout(&mut self, a: usize) {
        self.history.push(Event::Fault {
            what: format!("raw-{a} times out"),
        });
        self.reinit(a, Duration::from_millis(1));
        self.raw(a, &[0], false, End::Open);
        std::thread::sleep(Duration::from_millis(3));
        if let Err(e) = self.broker.abort_expired_transactions() {
            self.violation(format!("the timeout sweep failed: {e}"));
        }
        let (name, id) = (self.raws[a].name.clone(), self.raws[a].id);
        if self.raws[a].open.is_some() && self.broker.end_txn(&name, id, true).is_ok() {
            self.violation("a timed-out transaction could still commit".into());
        }
        self.reinit(a, Duration::from_secs(60));
    }

    pub(super) fn member_join(&mut self) {
        match self.broker.join_group(
            MEMBERS_GROUP,
            None,
            &[TOPIC.to_string()],
            Duration::from_millis(100),
        ) {
            Ok(joined) => self.members.push((joined.member_id, joined.generation)),
            Err(e) => self.violation(format!("join failed: {e}")),
        }
    }

    /// A member commits with the generation it last saw; refused when the group moved on.
    pub(super) fn stale_member_commit(&mut self) {
        let Some((member, generation)) = self.members.first().cloned() else {
            return;
        };
        let current = self.broker.describe_group(MEMBERS_GROUP);
        let alive = current.members.iter().any(|m| m.member_id == member);
        let result = self
            .broker
            .offset_commit(MEMBERS_GROUP, generation, &member, &[(tp(0), 1)]);
        if (generation != current.generation || !alive) && result.is_ok() {
            self.violation(format!(
                "member {member} of generation {generation} committed in generation {}",
                current.generation
            ));
        }
    }
}
