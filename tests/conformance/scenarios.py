#!/usr/bin/env python3
"""Real-client conformance scenarios for a Kafka wire-protocol broker.

    python3 tests/conformance/scenarios.py --bootstrap HOST:PORT \
        --client confluent|kafka-python [--scenario N] [--seed S]

Scenarios (validated against Apache Kafka 4.4, the reference):
  1. keyed produce + consume round trip with headers, once per compression
     codec (none, gzip, snappy, lz4, zstd): every record comes back with its
     key, value and headers, in the partition the Java default partitioner
     (murmur2) picks for its key, at the offset its delivery report gave,
     offsets contiguous from 0 in every partition.
  2. a consumer group on a 6-partition topic whose members (threads) join and
     leave (1, 2, 3 members, then 2, 1, 0): after each rebalance settles every
     partition is owned by exactly one member; commits are synchronous after
     processing each record, so no record is seen twice and none is lost; a
     new member after everyone left starts exactly at the committed offsets.
  3. an idempotent producer (acks=all, retries): N records acknowledged once
     each, read back exactly once, in send order per partition.
  4. a transactional copier: a read_committed group consumer + transactional
     producer copy input -> output with send_offsets_to_transaction,
     committing most transactions and aborting some at random; a
     read_committed reader of the output never sees an aborted record and
     sees every input record exactly once; the group's committed offsets are
     the input's end offsets.

Every topic and group name has a random suffix. Every wait is bounded by a
deadline and polls its condition. Exit status 0 only when all passed; the
last line is `conformance: N passed, N failed`.
"""
import argparse
import random
import string
import sys
import threading
import time
import traceback
import uuid

DEADLINE_S = 120  # default bound for any single wait


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)


def suffix():
    return uuid.uuid4().hex[:10]


def wait_until(cond, what, timeout=DEADLINE_S, step=None):
    """Poll cond() until true; Failure after timeout. `step` (if given) is
    called between checks and should itself block briefly (e.g. a client
    poll), so no sleep is used to synchronise."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout}s waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.05)  # poll interval only


# Java's default partitioner for keyed records: murmur2(key) & 0x7fffffff % n
def murmur2(data):
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + \
            ((data[i4 + 2] & 0xFF) << 16) + ((data[i4 + 3] & 0xFF) << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= (k >> r)
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    idx = length & ~3
    if extra >= 3:
        h ^= (data[idx + 2] & 0xFF) << 16
    if extra >= 2:
        h ^= (data[idx + 1] & 0xFF) << 8
    if extra >= 1:
        h ^= (data[idx] & 0xFF)
        h = (h * m) & 0xFFFFFFFF
    h ^= (h >> 13)
    h = (h * m) & 0xFFFFFFFF
    h ^= (h >> 15)
    return h


def java_partition(key, n):
    return (murmur2(key) & 0x7FFFFFFF) % n


class Rec:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers")

    def __init__(self, topic, partition, offset, key, value, headers):
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value = key, value
        self.headers = [(k, v if v is not None else b"") for k, v in (headers or [])]

    def __repr__(self):
        return f"Rec({self.topic}/{self.partition}@{self.offset} key={self.key!r} value={self.value[:40]!r})"


# --------------------------------------------------------------- adapters
class ConfluentClient:
    name = "confluent"
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]

    def __init__(self, bootstrap):
        import confluent_kafka  # noqa: F401
        from confluent_kafka.admin import AdminClient
        self.ck = confluent_kafka
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def version(self):
        return f"confluent-kafka {self.ck.version()[0]}, librdkafka {self.ck.libversion()[0]}"

    def create_topic(self, name, partitions):
        from confluent_kafka.admin import NewTopic
        fs = self.admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
        fs[name].result(timeout=60)

        def ready():
            md = self.admin.list_topics(topic=name, timeout=10)
            t = md.topics.get(name)
            return (t is not None and t.error is None and len(t.partitions) == partitions
                    and all(p.leader >= 0 for p in t.partitions.values()))
        wait_until(ready, f"topic {name} with {partitions} leaders", timeout=60)

    def producer(self, compression="none", idempotent=False, transactional_id=None, extra=None):
        return ConfluentProducer(self, compression, idempotent, transactional_id, extra or {})

    def consumer(self, group=None, isolation="read_uncommitted", extra=None):
        return ConfluentConsumer(self, group, isolation, extra or {})


class ConfluentProducer:
    def __init__(self, cl, compression, idempotent, transactional_id, extra):
        conf = {
            "bootstrap.servers": cl.bootstrap,
            "compression.type": compression,
            "partitioner": "murmur2_random",  # the Java client's default
            "linger.ms": 5,
        }
        if idempotent:
            conf.update({"enable.idempotence": True, "acks": "all",
                         "retries": 2147483647, "max.in.flight.requests.per.connection": 5})
        if transactional_id:
            conf["transactional.id"] = transactional_id
        conf.update(extra)
        self.ck = cl.ck
        self.p = cl.ck.Producer(conf)

    def send(self, topic, key, value, headers=None, partition=None, on_done=None):
        def cb(err, msg):
            if on_done is not None:
                if err is not None:
                    on_done(None, None, err)
                else:
                    on_done(msg.partition(), msg.offset(), None)
        kw = {}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                self.p.produce(topic, value=value, key=key, headers=headers, on_delivery=cb, **kw)
                break
            except BufferError:
                self.p.poll(0.1)  # local queue full: serve delivery reports
        self.p.poll(0)

    def flush(self, timeout=DEADLINE_S):
        left = self.p.flush(timeout)
        check(left == 0, f"{left} records still undelivered after {timeout}s")

    def init_transactions(self):
        self.p.init_transactions(60)

    def begin(self):
        self.p.begin_transaction()

    def send_offsets(self, topic, offsets, consumer):
        tps = [self.ck.TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        self.p.send_offsets_to_transaction(tps, consumer.c.consumer_group_metadata(), 60)

    def commit(self):
        self.p.commit_transaction(60)

    def abort(self):
        self.p.abort_transaction(60)

    def close(self):
        self.p.flush(10)


class ConfluentConsumer:
    def __init__(self, cl, group, isolation, extra):
        self.ck = cl.ck
        conf = {
            "bootstrap.servers": cl.bootstrap,
            "group.id": group or f"conformance-reader-{suffix()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
        conf.update(extra)
        self.topic = None
        self.c = cl.ck.Consumer(conf)

    def subscribe(self, topic):
        self.topic = topic
        self.c.subscribe([topic])

    def assign(self, topic, partitions):
        self.topic = topic
        self.c.assign([self.ck.TopicPartition(topic, p, self.ck.OFFSET_BEGINNING) for p in partitions])

    def poll(self, timeout=0.5, max_records=500):
        if max_records == 1:
            m = self.c.poll(timeout)
            msgs = [] if m is None else [m]
        else:
            msgs = self.c.consume(num_messages=max_records, timeout=timeout)
        out = []
        for m in msgs:
            if m.error() is not None:
                if m.error().code() == self.ck.KafkaError._PARTITION_EOF:
                    continue
                raise Failure(f"consumer error: {m.error()}")
            out.append(Rec(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers()))
        return out

    def assignment(self):
        return frozenset(tp.partition for tp in self.c.assignment())

    def commit_sync(self, offsets):
        tps = [self.ck.TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]
        self.c.commit(offsets=tps, asynchronous=False)

    def committed(self, topic, partitions):
        res = self.c.committed([self.ck.TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in res}

    def end_offsets(self, topic, partitions):
        return {p: self.c.get_watermark_offsets(self.ck.TopicPartition(topic, p), timeout=30)[1]
                for p in partitions}

    def seek(self, partition, offset):
        self.c.seek(self.ck.TopicPartition(self.topic, partition, offset))

    def close(self):
        self.c.close()


class KafkaPythonClient:
    name = "kafka-python"
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]

    def __init__(self, bootstrap):
        import kafka
        from kafka.admin import KafkaAdminClient
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="conformance-admin")

    def version(self):
        return f"kafka-python {self.kafka.__version__}"

    def create_topic(self, name, partitions):
        from kafka.admin import NewTopic
        self.admin.create_topics([NewTopic(name, partitions, 1)], timeout_ms=30000)

        def ready():
            try:
                d = self.admin.describe_topics([name])
            except Exception:  # noqa: BLE001 - not yet known
                return False
            if not d or d[0].get("error_code", 0) != 0:
                return False
            ps = d[0].get("partitions", [])
            return len(ps) == partitions and all(p.get("leader_id", -1) >= 0 for p in ps)
        wait_until(ready, f"topic {name} with {partitions} leaders", timeout=60)

    def producer(self, compression="none", idempotent=False, transactional_id=None, extra=None):
        return KafkaPythonProducer(self, compression, idempotent, transactional_id, extra or {})

    def consumer(self, group=None, isolation="read_uncommitted", extra=None):
        return KafkaPythonConsumer(self, group, isolation, extra or {})


class KafkaPythonProducer:
    def __init__(self, cl, compression, idempotent, transactional_id, extra):
        conf = {
            "bootstrap_servers": cl.bootstrap,
            "compression_type": None if compression == "none" else compression,
            "linger_ms": 5,
            # kafka-python enables idempotence by default (like the Java
            # client); scenario 1 states it explicitly either way.
            "enable_idempotence": bool(idempotent or transactional_id),
            "acks": "all",
        }
        if idempotent:
            conf.update({"retries": 2147483647, "max_in_flight_requests_per_connection": 5})
        if transactional_id:
            conf["transactional_id"] = transactional_id
        conf.update(extra)
        self.kafka = cl.kafka
        self.p = cl.kafka.KafkaProducer(**conf)

    def send(self, topic, key, value, headers=None, partition=None, on_done=None):
        fut = self.p.send(topic, value=value, key=key, headers=headers, partition=partition)
        if on_done is not None:
            fut.add_callback(lambda md: on_done(md.partition, md.offset, None))
            fut.add_errback(lambda e: on_done(None, None, e))

    def flush(self, timeout=DEADLINE_S):
        self.p.flush(timeout=timeout)

    def init_transactions(self):
        self.p.init_transactions()

    def begin(self):
        self.p.begin_transaction()

    def send_offsets(self, topic, offsets, consumer):
        from kafka.structs import OffsetAndMetadata, TopicPartition
        om = {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        self.p.send_offsets_to_transaction(om, consumer.c.group_metadata())

    def commit(self):
        self.p.commit_transaction()

    def abort(self):
        self.p.abort_transaction()

    def close(self):
        self.p.close(timeout=10)


class KafkaPythonConsumer:
    def __init__(self, cl, group, isolation, extra):
        self.kafka = cl.kafka
        conf = {
            "bootstrap_servers": cl.bootstrap,
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": isolation,
        }
        conf.update(extra)
        self.topic = None
        self.c = cl.kafka.KafkaConsumer(**conf)

    def tp(self, p, topic=None):
        return self.kafka.TopicPartition(topic or self.topic, p)

    def subscribe(self, topic):
        self.topic = topic
        self.c.subscribe([topic])

    def assign(self, topic, partitions):
        self.topic = topic
        tps = [self.tp(p) for p in partitions]
        self.c.assign(tps)
        self.c.seek_to_beginning(*tps)

    def poll(self, timeout=0.5, max_records=500):
        batches = self.c.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        out = []
        for tp, recs in batches.items():
            for r in recs:
                out.append(Rec(r.topic, r.partition, r.offset, r.key, r.value, r.headers))
        out.sort(key=lambda r: (r.partition, r.offset))
        return out

    def assignment(self):
        return frozenset(tp.partition for tp in self.c.assignment())

    def commit_sync(self, offsets):
        from kafka.structs import OffsetAndMetadata
        self.c.commit({self.tp(p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})

    def committed(self, topic, partitions):
        return {p: self.c.committed(self.tp(p, topic)) for p in partitions}

    def end_offsets(self, topic, partitions):
        r = self.c.end_offsets([self.tp(p, topic) for p in partitions])
        return {tp.partition: o for tp, o in r.items()}

    def seek(self, partition, offset):
        self.c.seek(self.tp(partition), offset)

    def close(self):
        self.c.close(autocommit=False)


# --------------------------------------------------------------- helpers
def produce_all(prod, topic, records, timeout=DEADLINE_S):
    """records: list of (key, value, headers[, partition]). Returns the list
    of delivery reports (partition, offset) in record order; fails on any
    error or on a record acknowledged more or less than once."""
    lock = threading.Lock()
    reports = [[] for _ in records]
    errors = []

    def done_for(i):
        def on_done(p, o, err):
            with lock:
                if err is not None:
                    errors.append((i, err))
                else:
                    reports[i].append((p, o))
        return on_done

    for i, rec in enumerate(records):
        key, value, headers = rec[:3]
        partition = rec[3] if len(rec) > 3 else None
        prod.send(topic, key, value, headers=headers, partition=partition, on_done=done_for(i))
    prod.flush(timeout)
    wait_until(lambda: all(reports[i] for i in range(len(records))) or errors,
               "delivery reports", timeout=30)
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:3]}")
    multi = [i for i, r in enumerate(reports) if len(r) != 1]
    check(not multi, f"{len(multi)} records acknowledged != once, e.g. {[(i, reports[i]) for i in multi[:3]]}")
    return [r[0] for r in reports]


def read_until(cons, done, what, timeout=DEADLINE_S):
    """Poll cons until done(records) holds; returns the records."""
    got = []
    wait_until(lambda: done(got), what, timeout=timeout,
               step=lambda: got.extend(cons.poll(0.5)))
    return got


def read_topic(cl, topic, partitions, expect, isolation="read_uncommitted", timeout=DEADLINE_S):
    """Read `expect` records from all partitions of topic from the beginning
    (assigned, no group), then keep reading to the end offsets to catch any
    extra record. Returns all records read."""
    c = cl.consumer(isolation=isolation)
    try:
        c.assign(topic, range(partitions))
        got = read_until(c, lambda g: len(g) >= expect, f"{expect} records from {topic}", timeout)
        ends = c.end_offsets(topic, range(partitions))
        last = {}
        for r in got:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)
        check(sum(ends.values()) >= len(got),
              f"read {len(got)} records but end offsets of {topic} sum to {sum(ends.values())}")

        def at_end():
            for r in got:
                last[r.partition] = max(last.get(r.partition, -1), r.offset)
            return all(last.get(p, -1) + 1 >= ends[p] for p in range(partitions))
        wait_until(at_end, f"reading {topic} to its end offsets {ends}", timeout=30,
                   step=lambda: got.extend(c.poll(0.2)))
        return got
    finally:
        c.close()


def hdr_list(h):
    return [(k, bytes(v)) for k, v in h]


# --------------------------------------------------------------- scenario 1
def scenario_roundtrip(cl, codec):
    parts, n, nkeys = 3, 300, 30
    topic = f"conf-roundtrip-{codec}-{suffix()}"
    cl.create_topic(topic, parts)
    records = []
    for i in range(n):
        key = f"key-{i % nkeys}".encode()
        value = (f"{codec}-{i}-".encode() + b"x" * ((i % 7) * 150))
        headers = [("idx", str(i).encode()), ("codec", codec.encode()),
                   ("dup", b"first"), ("dup", b"second"), ("bin", bytes([0, 255, i % 256]))]
        records.append((key, value, headers))
    prod = cl.producer(compression=codec, idempotent=True)
    try:
        reports = produce_all(prod, topic, records)
    finally:
        prod.close()
    got = read_topic(cl, topic, parts, n)
    check(len(got) == n, f"read {len(got)} records, produced {n}")
    by_idx = {}
    for r in got:
        idx = dict(r.headers).get("idx")
        check(idx is not None, f"record without idx header: {r} headers={r.headers}")
        i = int(idx)
        check(i not in by_idx, f"record {i} read twice: {by_idx.get(i)} and {r}")
        by_idx[i] = r
    check(sorted(by_idx) == list(range(n)), "not every record read back")
    for i, (key, value, headers) in enumerate(records):
        r = by_idx[i]
        check(r.key == key, f"record {i}: key {r.key!r} != {key!r}")
        check(r.value == value, f"record {i}: value differs ({len(r.value)} vs {len(value)} bytes)")
        check(hdr_list(r.headers) == hdr_list(headers),
              f"record {i}: headers {r.headers} != {headers}")
        want_p = java_partition(key, parts)
        check(r.partition == want_p, f"record {i} key {key!r}: partition {r.partition}, murmur2 says {want_p}")
        check(reports[i] == (r.partition, r.offset),
              f"record {i}: delivery report {reports[i]} but read at {(r.partition, r.offset)}")
    for p in range(parts):
        offs = sorted(r.offset for r in got if r.partition == p)
        check(offs == list(range(len(offs))), f"partition {p}: offsets not contiguous from 0: {offs[:10]}...")
    log(f"  {codec}: {n} records over {parts} partitions round-tripped "
        f"({[sum(1 for r in got if r.partition == p) for p in range(parts)]} per partition)")


# --------------------------------------------------------------- scenario 2
class Member:
    """A group member on its own thread: poll one record, process it (log
    it), commit its offset synchronously, repeat."""

    def __init__(self, cl, name, group, topic, shared):
        self.name, self.shared = name, shared
        self.stop_flag = threading.Event()
        self.error = None
        self.first_offsets = {}
        self.cons = cl.consumer(group=group, extra=self._extra(cl))
        self.cons.subscribe(topic)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    @staticmethod
    def _extra(cl):
        if cl.name == "confluent":
            return {"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
        return {"session_timeout_ms": 10000, "heartbeat_interval_ms": 1000}

    def _run(self):
        sh = self.shared
        try:
            while not self.stop_flag.is_set():
                recs = self.cons.poll(0.2, max_records=1)
                asg = self.cons.assignment()
                with sh["lock"]:
                    sh["assign"][self.name] = asg
                for r in recs:
                    check(r.partition in asg, f"{self.name} got {r} outside its assignment {set(asg)}")
                    with sh["lock"]:
                        sh["seen"].setdefault(r.value, []).append((self.name, r.partition, r.offset))
                    self.first_offsets.setdefault(r.partition, r.offset)
                    self.cons.commit_sync({r.partition: r.offset + 1})
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
            traceback.print_exc()
        finally:
            with sh["lock"]:
                sh["assign"].pop(self.name, None)
            try:
                self.cons.close()
            except Exception as e:  # noqa: BLE001
                if self.error is None:
                    self.error = e

    def leave(self):
        self.stop_flag.set()
        self.thread.join(60)
        check(not self.thread.is_alive(), f"{self.name} did not close within 60s")


def scenario_group(cl):
    parts, batch = 6, 300
    topic = f"conf-group-{suffix()}"
    group = f"conf-group-{suffix()}"
    cl.create_topic(topic, parts)
    shared = {"lock": threading.Lock(), "assign": {}, "seen": {}}
    produced = []
    members = {}
    prod = cl.producer(idempotent=True)
    seq = [0]

    def produce_batch():
        recs = []
        for _ in range(batch):
            i = seq[0]
            seq[0] += 1
            recs.append((f"k{i % 97}".encode(), f"g-{i}".encode(), None))
        produce_all(prod, topic, recs)
        produced.extend(r[1] for r in recs)

    def errors():
        for m in members.values():
            if m.error is not None:
                raise Failure(f"member {m.name} failed: {m.error!r}")

    def settled(k):
        errors()
        with shared["lock"]:
            asg = dict(shared["assign"])
        if len(asg) != k:
            return False
        owned = [p for a in asg.values() for p in a]
        return sorted(owned) == list(range(parts)) and all(len(a) == parts // k for a in asg.values())

    def settle(k, why):
        wait_until(lambda: settled(k), f"{k} member(s) owning all {parts} partitions once ({why})", timeout=90)
        with shared["lock"]:
            asg = {n: sorted(a) for n, a in shared["assign"].items()}
        log(f"  settled after {why}: {asg}")

    def all_consumed():
        errors()
        with shared["lock"]:
            return all(v in shared["seen"] for v in produced)

    def consume_all(why):
        wait_until(all_consumed, f"all {len(produced)} records consumed ({why})", timeout=90)
        with shared["lock"]:
            asg = dict(shared["assign"])
        owned = sorted(p for a in asg.values() for p in a)
        check(owned == list(range(parts)), f"assignment changed while consuming ({why}): {asg}")

    try:
        for name, why in [("A", "A joined"), ("B", "B joined"), ("C", "C joined")]:
            produce_batch()
            members[name] = Member(cl, name, group, topic, shared)
            settle(len(members), why)
            consume_all(why)
        for name in ["A", "B"]:
            produce_batch()
            members.pop(name).leave()
            settle(len(members), f"{name} left")
            consume_all(f"{name} left")
        members.pop("C").leave()
        # Everyone left: committed offsets must be the end offsets.
        probe = cl.consumer(group=group)
        try:
            committed = probe.committed(topic, range(parts))
            ends = probe.end_offsets(topic, range(parts))
        finally:
            probe.close()
        check(committed == ends, f"after everyone left, committed {committed} != end offsets {ends}")
        before = len(produced)
        produce_batch()
        members["D"] = Member(cl, "D", group, topic, shared)
        settle(1, "D joined an empty group")
        consume_all("D joined")
        d = members.pop("D")
        d.leave()
        check(d.error is None, f"member D failed: {d.error!r}")
        for p, off in d.first_offsets.items():
            check(off == committed[p], f"D started partition {p} at {off}, committed was {committed[p]}")
        with shared["lock"]:
            d_values = {v for v, seen in shared["seen"].items() if any(s[0] == "D" for s in seen)}
        check(d_values == set(produced[before:]),
              f"D read {len(d_values)} records, {len(produced) - before} were produced after everyone left")
    finally:
        for m in members.values():
            m.stop_flag.set()
        for m in members.values():
            m.thread.join(30)
        prod.close()
    with shared["lock"]:
        seen = dict(shared["seen"])
    dups = {v: s for v, s in seen.items() if len(s) > 1}
    check(not dups, f"{len(dups)} records seen more than once, e.g. {list(dups.items())[:3]}")
    lost = [v for v in produced if v not in seen]
    check(not lost, f"{len(lost)} records never seen, e.g. {lost[:5]}")
    extra = set(seen) - set(produced)
    check(not extra, f"{len(extra)} records seen that were not produced")
    per = {}
    for v, s in seen.items():
        per[s[0][0]] = per.get(s[0][0], 0) + 1
    log(f"  {len(produced)} records, each seen once; per member {dict(sorted(per.items()))}")


# --------------------------------------------------------------- scenario 3
def scenario_idempotent(cl):
    parts, n = 3, 20000
    topic = f"conf-idem-{suffix()}"
    cl.create_topic(topic, parts)
    records = [(f"k{i % 101}".encode(), f"idem-{i}".encode(), None) for i in range(n)]
    prod = cl.producer(idempotent=True)
    try:
        reports = produce_all(prod, topic, records, timeout=180)
    finally:
        prod.close()
    got = read_topic(cl, topic, parts, n, timeout=180)
    check(len(got) == n, f"read {len(got)} records, produced {n}")
    idx_of = {}
    for r in got:
        i = int(r.value.split(b"-")[1])
        check(i not in idx_of, f"record {i} read twice")
        idx_of[i] = (r.partition, r.offset)
    check(len(idx_of) == n, "not every record read back")
    for i in range(n):
        check(reports[i] == idx_of[i], f"record {i}: acknowledged at {reports[i]}, read at {idx_of[i]}")
    for p in range(parts):
        in_p = sorted((r.offset, int(r.value.split(b"-")[1])) for r in got if r.partition == p)
        check([o for o, _ in in_p] == list(range(len(in_p))), f"partition {p}: offsets not contiguous")
        idxs = [i for _, i in in_p]
        check(idxs == sorted(idxs), f"partition {p}: records out of send order")
    log(f"  {n} records acknowledged once, read once, in send order "
        f"({[sum(1 for r in got if r.partition == p) for p in range(parts)]} per partition)")


# --------------------------------------------------------------- scenario 4
def scenario_transactions(cl, rng):
    parts, n, max_batch, p_abort = 3, 1500, 60, 0.3
    sfx = suffix()
    src, dst, group = f"conf-txn-in-{sfx}", f"conf-txn-out-{sfx}", f"conf-txn-copier-{sfx}"
    cl.create_topic(src, parts)
    cl.create_topic(dst, parts)
    prod = cl.producer(idempotent=True)
    try:
        produce_all(prod, src, [(f"k{i % 53}".encode(), f"in-{i}".encode(), None) for i in range(n)])
    finally:
        prod.close()

    cons = cl.consumer(group=group, isolation="read_committed")
    txp = cl.producer(transactional_id=f"conf-copier-{sfx}")
    committed_txns, aborted_txns = set(), set()
    copied = 0
    try:
        cons.subscribe(src)
        txp.init_transactions()
        deadline = time.monotonic() + 240
        txn = 0
        while copied < n:
            check(time.monotonic() < deadline, f"copier: only {copied}/{n} copied in 240s")
            recs = cons.poll(0.5, max_records=max_batch)
            if not recs:
                continue
            txn += 1
            abort = rng.random() < p_abort
            txp.begin()
            first, nxt = {}, {}
            for r in recs:
                first.setdefault(r.partition, r.offset)
                nxt[r.partition] = r.offset + 1
                txp.send(dst, r.key, r.value + f"|txn={txn}".encode(),
                         headers=[("txn", str(txn).encode())], partition=r.partition)
            txp.send_offsets(src, nxt, cons)
            if abort:
                # Flush first: the aborted records must reach the broker (a client may drop
                # records still queued when it aborts, and a fast broker leaves them queued).
                txp.flush()
                txp.abort()
                aborted_txns.add(txn)
                for p, off in first.items():  # rewind to re-copy what was aborted
                    cons.seek(p, off)
            else:
                txp.commit()
                committed_txns.add(txn)
                copied += len(recs)
        committed = cons.committed(src, range(parts))
        ends = cons.end_offsets(src, range(parts))
    finally:
        cons.close()
        txp.close()
    log(f"  copier: {len(committed_txns)} transactions committed, {len(aborted_txns)} aborted")
    check(committed == ends, f"group {group} committed {committed}, input end offsets {ends}")
    check(aborted_txns, "no transaction was aborted (the scenario needs some)")

    # A fence after every transaction: one plain record per output partition.
    plain = cl.producer(idempotent=True)
    try:
        produce_all(plain, dst, [(b"end", b"END", None, p) for p in range(parts)])
    finally:
        plain.close()

    def read_to_fences(isolation):
        c = cl.consumer(isolation=isolation)
        try:
            c.assign(dst, range(parts))
            return read_until(c, lambda g: sum(1 for r in g if r.value == b"END") >= parts,
                              f"the END fence in all {parts} partitions of {dst} ({isolation})")
        finally:
            c.close()

    got = read_to_fences("read_committed")
    data = [r for r in got if r.value != b"END"]
    seen = {}
    for r in data:
        v, t = r.value.rsplit(b"|txn=", 1)
        t = int(t)
        check(t not in aborted_txns, f"read_committed saw a record of aborted transaction {t}: {r}")
        check(t in committed_txns, f"record of unknown transaction {t}: {r}")
        check(v not in seen, f"input record {v!r} appears twice in the output: {seen.get(v)} and {r}")
        seen[v] = r
    missing = [i for i in range(n) if f"in-{i}".encode() not in seen]
    check(not missing, f"{len(missing)} input records missing from the output, e.g. {missing[:5]}")
    check(len(seen) == n, f"output has {len(seen)} distinct records, input {n}")

    raw = read_to_fences("read_uncommitted")
    aborted_seen = sum(1 for r in raw if r.value != b"END" and int(r.value.rsplit(b"|txn=", 1)[1]) in aborted_txns)
    check(aborted_seen > 0, "read_uncommitted saw no aborted record although transactions were aborted")
    log(f"  read_committed: {n} input records exactly once, no aborted record; "
        f"read_uncommitted sees {aborted_seen} aborted records")


# --------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--client", required=True, choices=["confluent", "kafka-python"])
    ap.add_argument("--scenario", type=int, choices=[1, 2, 3, 4], action="append",
                    help="run only this scenario (repeatable)")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    wanted = a.scenario or [1, 2, 3, 4]

    results = []  # (name, status, detail)
    try:
        cl = ConfluentClient(a.bootstrap) if a.client == "confluent" else KafkaPythonClient(a.bootstrap)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: cannot set up client {a.client}: {e!r}", flush=True)
        print(f"conformance: 0 passed, {len(wanted)} failed")
        return 1
    log(f"{cl.version()} against {a.bootstrap}, seed {seed}")

    def run(name, fn, *args):
        log(f"== {a.client} scenario {name}")
        t = time.monotonic()
        try:
            fn(*args)
            results.append((name, "pass", ""))
            log(f"PASS {a.client} scenario {name} ({time.monotonic() - t:.1f}s)")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the rest run
            if not isinstance(e, Failure):
                traceback.print_exc()
            results.append((name, "fail", repr(e) if not isinstance(e, Failure) else str(e)))
            log(f"FAIL {a.client} scenario {name} ({time.monotonic() - t:.1f}s): {results[-1][2]}")

    if 1 in wanted:
        for codec in cl.codecs:
            run(f"1 round trip [{codec}]", scenario_roundtrip, cl, codec)
    if 2 in wanted:
        run("2 consumer group rebalance + committed offsets", scenario_group, cl)
    if 3 in wanted:
        run("3 idempotent producer", scenario_idempotent, cl)
    if 4 in wanted:
        run("4 transactional copier", scenario_transactions, cl, rng)

    passed = sum(1 for r in results if r[1] == "pass")
    failed = sum(1 for r in results if r[1] == "fail")
    for name, status, detail in results:
        if status == "fail":
            print(f"FAILED: {a.client} scenario {name}: {detail}", flush=True)
    print(f"conformance: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
