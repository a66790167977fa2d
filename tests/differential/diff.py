#!/usr/bin/env python3
"""Differential scenarios for a Kafka wire-protocol broker.

    python3 tests/differential/diff.py --bootstrap HOST:PORT [--out FILE]

Runs a fixed, deterministic scenario set against ONE broker and prints (or
writes) a canonical JSON document of what was observed. tests/differential/
run.sh runs it against Apache Kafka 4.4 and against `sluice broker` (both
fresh, auto topic creation off, initial rebalance delay 0) and diffs the two.

The broker must be fresh: topic, group and transactional ids are fixed.
Whatever legitimately differs between brokers (cluster id, topic ids, member
ids, producer ids, broker-assigned timestamps, error messages) is normalised
here or left out of the document; the remaining legitimate differences are in
run.sh's ALLOW list (with the reason for each).

Scenarios (each a top-level key of the document):
  offsets      plain / idempotent / transactional (committed, aborted, one
               left open) keyed records with explicit timestamps into a
               1-partition topic: offsets as acked, log start, high watermark,
               last stable offset (ListOffsets read_committed) with and without
               the open transaction, max timestamp, offsets for timestamps.
  consume      read_committed and read_uncommitted consumers from the
               beginning (offset, key, value, timestamp of every record); a raw
               Fetch read_committed: aborted transactions list and LSO.
  group        2-member group (range assignor) on 4 partitions: the
               assignment, what each member saw, committed offsets, where a
               new member resumes after both left.
  errors       error names for: unknown topic (Metadata without auto-create,
               Produce, Fetch, ListOffsets on an unknown partition),
               out-of-range Fetch offset (raw and consumer with
               auto.offset.reset=error), fenced producer (raw and the client),
               invalid transaction state (EndTxn without a transaction,
               TxnOffsetCommit without AddOffsetsToTxn, ...), stale generation
               (OffsetCommit / Heartbeat / SyncGroup with an old generation).
  admin        CreateTopics duplicate / invalid names / bad partition counts,
               DeleteTopics unknown, DescribeGroups unknown, OffsetFetch of a
               group without commits.
"""
import argparse
import json
import socket
import struct
import sys
import time
import traceback

import kafka.errors as kerrors
from kafka.record.memory_records import MemoryRecordsBuilder, MemoryRecords
from kafka.protocol.metadata import MetadataRequest, FindCoordinatorRequest
from kafka.protocol.producer import (ProduceRequest, InitProducerIdRequest, AddPartitionsToTxnRequest,
                                     AddOffsetsToTxnRequest, EndTxnRequest, TxnOffsetCommitRequest)
from kafka.protocol.consumer import (FetchRequest, ListOffsetsRequest, JoinGroupRequest, SyncGroupRequest,
                                     HeartbeatRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest)
from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest, DescribeGroupsRequest

from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 60  # bound of any single wait
T0 = time.monotonic()


def log(msg):
    print(f"[diff {time.monotonic() - T0:6.2f}s] {msg}", file=sys.stderr, flush=True)


def ename(code):
    """Kafka's error name for an error code (NONE for 0)."""
    if code == 0:
        return "NONE"
    try:
        return kerrors.for_code(code).message
    except Exception:
        return f"UNKNOWN_CODE_{code}"


def poll_until(what, fn, timeout=DEADLINE_S):
    """Call fn() until it returns something other than None; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v is not None:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # poll interval only


# ------------------------------------------------------------ raw requests
def mk(cls, d):
    """Build a kafka-python protocol data object (nested) from a dict."""
    kw = {}
    for k, v in d.items():
        f = cls._struct.fields[k]
        if v is None:
            pass
        elif f.is_struct_array():
            v = [mk(f.data_class, x) for x in v]
        elif f.is_struct():
            v = mk(f.data_class, v)
        kw[k] = v
    return cls(**kw)


class Raw:
    """One blocking connection; request classes and versions are explicit."""

    def __init__(self, bootstrap):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=DEADLINE_S)
        self.cid = 0

    def call(self, req_cls, version, **fields):
        req = mk(req_cls, fields)
        self.cid += 1
        req.with_header(correlation_id=self.cid, client_id="sluice-differential")
        self.sock.sendall(req.encode(version=version, header=True, framed=True))
        n = struct.unpack(">i", self._read(4))[0]
        data = self._read(n)
        resp_cls = getattr(sys.modules[req_cls.__module__], req_cls.__name__.replace("Request", "Response"))
        return resp_cls.decode(data, version=version, header=True).to_dict(json=False)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


RETRIABLE = {14, 15, 16, 51}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS


def retry_call(raw, what, code_of, req_cls, version, **fields):
    """A raw call repeated (bounded) while its error is a retriable coordinator one."""
    def attempt():
        r = raw.call(req_cls, version, **fields)
        return None if code_of(r) in RETRIABLE else r
    return poll_until(what, attempt)


def records_bytes(recs, pid=-1, epoch=-1, seq=-1, transactional=False):
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20, offset=0,
                             transactional=transactional, producer_id=pid, producer_epoch=epoch,
                             base_sequence=seq)
    for ts, k, v in recs:
        b.append(ts, k, v, [])
    b.close()
    return bytes(b.buffer())


# ------------------------------------------------------------ helpers
# Records carry explicit CreateTime timestamps BASE_TS + a fixed delta; the
# document holds only the deltas. BASE_TS is set at start to 30 minutes ahead
# of the clock (inside Kafka's default log.message.timestamp.after.max.ms of
# 1 h), so every record timestamp is above the broker clock that stamps
# transaction markers: time lookups then land on records, not on markers.
BASE_TS = None


def norm_ts(t):
    """Timestamps this program set are kept; others (transaction markers get the
    broker's clock) are normalised."""
    if t == -1:
        return -1
    return f"BASE+{t - BASE_TS}" if BASE_TS - 10**4 <= t <= BASE_TS + 10**7 else "<broker-assigned>"


class Ctx:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.raw = Raw(bootstrap)

    def create_topic(self, name, partitions):
        fs = self.admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
        fs[name].result(timeout=DEADLINE_S)

        def ready():
            r = self.raw.call(MetadataRequest, 12, topics=[{"name": name}], allow_auto_topic_creation=False)
            t = r["topics"][0]
            ok = t["error_code"] == 0 and len(t["partitions"]) == partitions and \
                all(p["leader_id"] >= 0 and p["error_code"] == 0 for p in t["partitions"])
            return True if ok else None
        poll_until(f"topic {name} ready", ready)

    def list_offset(self, topic, partition, ts, isolation=0):
        r = self.raw.call(ListOffsetsRequest, 7, replica_id=-1, isolation_level=isolation,
                          topics=[{"name": topic, "partitions": [
                              {"partition_index": partition, "current_leader_epoch": -1, "timestamp": ts}]}])
        p = r["topics"][0]["partitions"][0]
        out = {"error": ename(p["error_code"]), "offset": p["offset"]}
        if ts >= 0 or ts == -3:
            out["timestamp"] = norm_ts(p["timestamp"])
        return out

    def coordinator_ready(self, key, key_type):
        """FindCoordinator until it answers (creates Kafka's internal topics)."""
        def attempt():
            r = self.raw.call(FindCoordinatorRequest, 3, key=key, key_type=key_type)
            return r if r["error_code"] == 0 else None
        poll_until(f"coordinator for {key}", attempt)


def drain(consumer, expected_eof, timeout=DEADLINE_S):
    """Consume until every partition in expected_eof has reported EOF."""
    seen, eof, errors = [], set(), []
    deadline = time.monotonic() + timeout
    while eof != expected_eof:
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain: EOF on {sorted(eof)} of {sorted(expected_eof)}")
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            else:
                errors.append(m.error().name())
            continue
        eof.discard(m.partition())
        seen.append(m)
    return seen, errors


def rec(m):
    return {"p": m.partition(), "offset": m.offset(), "key": (m.key() or b"").decode(),
            "value": (m.value() or b"").decode(), "ts": norm_ts(m.timestamp()[1])}


# ------------------------------------------------------------ scenario 1
T_OFF = "diff-offsets"


def produce_acked(p, topic, recs, partition=0):
    """Produce (key, value, ts) records; return the acked offsets in order."""
    acks = {}

    def cb(err, msg, i):
        acks[i] = (err.name() if err else "NONE", msg.offset())
    for i, (k, v, ts) in enumerate(recs):
        p.produce(topic, key=k, value=v, partition=partition, timestamp=ts,
                  on_delivery=lambda err, msg, i=i: cb(err, msg, i))
    left = p.flush(DEADLINE_S)
    assert left == 0, f"{left} records not delivered"
    return [{"key": k, "error": acks[i][0], "offset": acks[i][1]} for i, (k, _, _) in enumerate(recs)]


def wait_markers(ctx, topic, hw):
    """Poll until the partition has no open transaction and its high watermark is hw."""
    def done():
        h = ctx.list_offset(topic, 0, -1, 0)["offset"]
        lso = ctx.list_offset(topic, 0, -1, 1)["offset"]
        return True if (h == lso == hw) else None
    poll_until(f"{topic}: transaction markers written (HW = LSO = {hw})", done)


def scenario_offsets(ctx, doc):
    ctx.create_topic(T_OFF, 1)
    out = {}
    ts = lambda i: BASE_TS + i * 1000  # noqa: E731

    plain = Producer({"bootstrap.servers": ctx.bootstrap, "enable.idempotence": False, "acks": "all",
                      "linger.ms": 0})
    out["plain"] = produce_acked(plain, T_OFF, [(f"k{i}", f"plain-{i}", ts(i)) for i in range(3)])

    idem = Producer({"bootstrap.servers": ctx.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    out["idempotent"] = produce_acked(idem, T_OFF, [(f"k{i}", f"idem-{i}", ts(i)) for i in range(3, 6)])

    ctx.coordinator_ready("diff-txn-1", 1)
    tx = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": "diff-txn-1", "linger.ms": 0})
    tx.init_transactions(DEADLINE_S)
    tx.begin_transaction()
    out["txn_committed"] = produce_acked(tx, T_OFF, [(f"k{i}", f"commit-{i}", ts(i)) for i in range(6, 8)])
    tx.commit_transaction(DEADLINE_S)
    tx.begin_transaction()
    # timestamps of the aborted records are the largest so far: offsets_for_times
    # and max-timestamp show whether aborted records count.
    out["txn_aborted"] = produce_acked(tx, T_OFF, [(f"k{i}", f"abort-{i}", ts(i + 100)) for i in range(8, 10)])
    tx.abort_transaction(DEADLINE_S)
    # Kafka answers EndTxn before its markers are written (they go out
    # asynchronously); wait for the abort marker so the next plain record's
    # offset does not depend on that race.
    wait_markers(ctx, T_OFF, out["txn_aborted"][-1]["offset"] + 2)  # + the abort marker
    out["after_txns"] = produce_acked(plain, T_OFF, [("k10", "plain-10", ts(10))])

    def marks():
        return {"log_start": ctx.list_offset(T_OFF, 0, -2),
                "high_watermark": ctx.list_offset(T_OFF, 0, -1, 0),
                "last_stable": ctx.list_offset(T_OFF, 0, -1, 1),
                "max_timestamp": ctx.list_offset(T_OFF, 0, -3)}
    out["marks_closed"] = marks()

    # an open transaction: LSO stays at its first record, HW moves on
    tx.begin_transaction()
    out["txn_open"] = produce_acked(tx, T_OFF, [("k11", "open-11", ts(11))])
    out["marks_open"] = marks()
    md = idem.list_topics(T_OFF, timeout=10)  # noqa: F841 (keeps the client alive)
    lo, hi = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "diff-wm",
                       "isolation.level": "read_committed"}).get_watermark_offsets(
        TopicPartition(T_OFF, 0), timeout=10, cached=False)
    out["watermarks_client_read_committed_open"] = [lo, hi]
    tx.abort_transaction(DEADLINE_S)
    wait_markers(ctx, T_OFF, out["txn_open"][-1]["offset"] + 2)
    out["marks_after_abort"] = marks()

    probes = {"before_first": BASE_TS - 5000, "first": BASE_TS, "between_1_2": BASE_TS + 1500,
              "plain_10": ts(10), "between_10_and_aborted": ts(50), "aborted_first": ts(108),
              "after_all": ts(1000)}
    out["offsets_for_times"] = {n: ctx.list_offset(T_OFF, 0, t) for n, t in probes.items()}
    out["offsets_for_times_read_committed"] = {n: ctx.list_offset(T_OFF, 0, t, 1) for n, t in probes.items()}
    plain.flush(5)
    idem.flush(5)
    tx.flush(5)
    doc["offsets"] = out


# ------------------------------------------------------------ scenario 2
T_GRP = "diff-group"


def scenario_consume(ctx, doc):
    out = {}
    for iso in ("read_committed", "read_uncommitted"):
        c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": f"diff-{iso}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "isolation.level": iso, "enable.partition.eof": True})
        c.assign([TopicPartition(T_OFF, 0, 0)])
        seen, errors = drain(c, {0})
        pos = c.position([TopicPartition(T_OFF, 0)])[0].offset
        c.close()
        out[iso] = {"records": [rec(m) for m in seen], "errors": errors, "position_at_eof": pos}

    # raw Fetch from 0 to the end (a fetch may stop at a segment end: Kafka rolls
    # a segment when record timestamps jump, so loop): batches and aborted txns
    for iso in (0, 1):
        offset, batches, aborted, marks = 0, [], set(), None
        for _ in range(100):
            r = ctx.raw.call(FetchRequest, 11, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                             isolation_level=iso, session_id=0, session_epoch=-1,
                             topics=[{"topic": T_OFF, "partitions": [
                                 {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
                                  "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                             forgotten_topics_data=[], rack_id="")
            p = r["responses"][0]["partitions"][0]
            marks = {"error": ename(p["error_code"]), "high_watermark": p["high_watermark"],
                     "last_stable_offset": p["last_stable_offset"], "log_start_offset": p["log_start_offset"]}
            # producer ids differ by broker: only the first offsets
            aborted |= {a["first_offset"] for a in (p.get("aborted_transactions") or [])}
            mr = MemoryRecords(bytes(p["records"] or b""))
            got = False
            while True:
                b = mr.next_batch()
                if b is None:
                    break
                offs = [x.offset for x in b]
                last = b.base_offset + (b.last_offset_delta if hasattr(b, "last_offset_delta") else len(offs) - 1)
                batches.append({"base": b.base_offset, "last": last, "transactional": b.is_transactional,
                                "control": b.is_control_batch, "records": offs})
                offset, got = last + 1, True
            limit = p["high_watermark"] if iso == 0 else p["last_stable_offset"]
            if not got or offset >= limit:
                break
        out[f"raw_fetch_isolation_{iso}"] = dict(marks, batches=batches, aborted_first_offsets=sorted(aborted))
    doc["consume"] = out


def scenario_group(ctx, doc):
    ctx.create_topic(T_GRP, 4)
    ctx.coordinator_ready("diff-g", 0)
    out = {}
    conf = {"bootstrap.servers": ctx.bootstrap, "group.id": "diff-g", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
    members = [Consumer(conf), Consumer(conf)]
    for c in members:
        c.subscribe([T_GRP])
    got = [[], []]

    def stable():
        for i, c in enumerate(members):
            m = c.poll(0.2)
            if m is not None and not m.error():
                got[i].append(m)
        a = [sorted(tp.partition for tp in c.assignment()) for c in members]
        return a if (sorted(a[0] + a[1]) == [0, 1, 2, 3] and a[0] and a[1]) else None
    assignment = poll_until("two-member assignment", stable)
    out["assignment"] = sorted(assignment)
    assert not got[0] and not got[1], "records before any were produced"

    p = Producer({"bootstrap.servers": ctx.bootstrap, "linger.ms": 0})
    recs = [(part, f"p{part}-k{i}", f"p{part}-v{i}") for part in range(4) for i in range(3)]
    for part, k, v in recs:
        p.produce(T_GRP, key=k, value=v, partition=part, timestamp=BASE_TS + part)
    assert p.flush(DEADLINE_S) == 0

    def all_seen():
        for i, c in enumerate(members):
            m = c.poll(0.2)
            if m is not None and not m.error():
                got[i].append(m)
        return True if len(got[0]) + len(got[1]) >= len(recs) else None
    poll_until("group members to consume all", all_seen)
    seen = sorted((sorted((rec(m) for m in g), key=lambda r: (r["p"], r["offset"])) for g in got),
                  key=lambda recs: recs[0]["p"] if recs else -1)
    out["seen_by_member"] = [[(r["p"], r["offset"], r["key"]) for r in g] for g in seen]
    for c in members:
        c.commit(asynchronous=False)
    committed = members[0].committed([TopicPartition(T_GRP, i) for i in range(4)], timeout=10)
    out["committed_client"] = {str(tp.partition): tp.offset for tp in committed}
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-g", require_stable=True,
                     topics=[{"name": T_GRP, "partition_indexes": [0, 1, 2, 3, 4]}])
    out["committed_raw"] = {"error": ename(r["error_code"]), "partitions": sorted(
        (pp["partition_index"], pp["committed_offset"], ename(pp["error_code"])) for t in r["topics"]
        for pp in t["partitions"])}
    for c in members:
        c.close()

    for part in range(4):
        p.produce(T_GRP, key=f"p{part}-k3", value=f"p{part}-v3", partition=part, timestamp=BASE_TS + part)
    assert p.flush(DEADLINE_S) == 0
    c3 = Consumer(dict(conf, **{"auto.offset.reset": "error"}))
    c3.subscribe([T_GRP])
    first = {}

    def resumed():
        m = c3.poll(0.2)
        if m is not None:
            if m.error():
                first.setdefault("errors", []).append(m.error().name())
            else:
                first.setdefault(str(m.partition()), (m.offset(), m.key().decode()))
        return True if all(str(i) in first for i in range(4)) else None
    poll_until("new member to resume", resumed)
    c3.close()
    out["new_member_first_record"] = first
    doc["group"] = out


# ------------------------------------------------------------ scenario 3
def produce_raw(ctx, topic, partition, records_b, txid=None, version=8):
    r = ctx.raw.call(ProduceRequest, version, transactional_id=txid, acks=-1, timeout_ms=10000,
                     topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": records_b}]}])
    p = r["responses"][0]["partition_responses"][0]
    return {"error": ename(p["error_code"]), "base_offset": p["base_offset"]}


def fetch_raw(ctx, topic, partition, offset, iso=0):
    r = ctx.raw.call(FetchRequest, 11, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                     isolation_level=iso, session_id=0, session_epoch=-1,
                     topics=[{"topic": topic, "partitions": [
                         {"partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
                          "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                     forgotten_topics_data=[], rack_id="")
    out = {"top_error": ename(r["error_code"])}
    for t in r["responses"]:
        for p in t["partitions"]:
            out["error"] = ename(p["error_code"])
            out["high_watermark"] = p["high_watermark"]
            out["last_stable_offset"] = p["last_stable_offset"]
            out["log_start_offset"] = p["log_start_offset"]
    return out


def init_pid(ctx, txid, pid=-1, epoch=-1, version=3):
    r = retry_call(ctx.raw, f"InitProducerId {txid}", lambda r: r["error_code"], InitProducerIdRequest, version,
                   transactional_id=txid, transaction_timeout_ms=60000, producer_id=pid, producer_epoch=epoch)
    return r


def end_txn(ctx, txid, pid, epoch, commit, version=3):
    r = ctx.raw.call(EndTxnRequest, version, transactional_id=txid, producer_id=pid, producer_epoch=epoch,
                     committed=commit)
    return ename(r["error_code"])


def add_partitions(ctx, txid, pid, epoch, topic, parts, version=3):
    r = retry_call(ctx.raw, "AddPartitionsToTxn", lambda r: max(
        [p["partition_error_code"] for t in r["results_by_topic_v3_and_below"] for p in t["results_by_partition"]]
        or [0]), AddPartitionsToTxnRequest, version, v3_and_below_transactional_id=txid,
        v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[{"name": topic, "partitions": parts}])
    return sorted((t["name"], p["partition_index"], ename(p["partition_error_code"]))
                  for t in r["results_by_topic_v3_and_below"] for p in t["results_by_partition"])


def join(ctx, group, member_id, meta=b"\x00", version=5):
    r = ctx.raw.call(JoinGroupRequest, version, group_id=group, session_timeout_ms=10000,
                     rebalance_timeout_ms=10000, member_id=member_id, group_instance_id=None,
                     protocol_type="consumer", protocols=[{"name": "range", "metadata": meta}])
    return r


def scenario_errors(ctx, doc):
    out = {}
    T_ERR = "diff-errors"
    ctx.create_topic(T_ERR, 1)
    produce_raw(ctx, T_ERR, 0, records_bytes([(BASE_TS, b"k", b"v")]))

    # --- unknown topic / partition
    r = ctx.raw.call(MetadataRequest, 12, topics=[{"name": "diff-nope"}], allow_auto_topic_creation=False)
    out["metadata_unknown_topic"] = [ename(t["error_code"]) for t in r["topics"]]
    r = ctx.raw.call(MetadataRequest, 12, topics=[{"name": "diff-nope-auto"}], allow_auto_topic_creation=True)
    out["metadata_unknown_topic_auto_create_disabled_on_broker"] = [ename(t["error_code"]) for t in r["topics"]]
    out["produce_unknown_topic"] = produce_raw(ctx, "diff-nope", 0, records_bytes([(BASE_TS, b"k", b"v")]))
    out["produce_unknown_partition"] = produce_raw(ctx, T_ERR, 7, records_bytes([(BASE_TS, b"k", b"v")]))
    out["fetch_unknown_topic"] = fetch_raw(ctx, "diff-nope", 0, 0)
    out["fetch_unknown_partition"] = fetch_raw(ctx, T_ERR, 7, 0)
    out["list_offsets_unknown_partition"] = ctx.list_offset(T_ERR, 7, -1)
    out["list_offsets_unknown_topic"] = ctx.list_offset("diff-nope", 0, -1)
    # confluent producer to an unknown topic (auto-create off on the broker)
    p = Producer({"bootstrap.servers": ctx.bootstrap, "message.timeout.ms": 3000,
                  "topic.metadata.propagation.max.ms": 100})
    errs = []
    p.produce("diff-nope", value=b"x", on_delivery=lambda err, msg: errs.append(err.name() if err else "NONE"))
    p.flush(DEADLINE_S)
    out["client_produce_unknown_topic"] = errs

    # --- out of range
    out["fetch_out_of_range_high"] = fetch_raw(ctx, T_ERR, 0, 1000)
    out["fetch_out_of_range_negative"] = fetch_raw(ctx, T_ERR, 0, -5)
    c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "diff-oor", "auto.offset.reset": "error",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(T_ERR, 0, 1000)])

    def oor():
        m = c.poll(0.2)
        return m.error().name() if (m is not None and m.error()) else None
    out["client_out_of_range_reset_error"] = poll_until("consumer out-of-range error", oor)
    c.close()

    # --- fenced producer, raw: an older epoch after a re-init of the same transactional.id
    ctx.coordinator_ready("diff-fence", 1)
    a = init_pid(ctx, "diff-fence")
    b = init_pid(ctx, "diff-fence")
    out["fence_init"] = {"errors": [ename(a["error_code"]), ename(b["error_code"])],
                         "same_producer_id": a["producer_id"] == b["producer_id"],
                         "epoch_delta": b["producer_epoch"] - a["producer_epoch"]}
    out["fence_add_partitions_old_epoch"] = add_partitions(ctx, "diff-fence", a["producer_id"],
                                                           a["producer_epoch"], T_ERR, [0])
    out["fence_end_txn_old_epoch"] = end_txn(ctx, "diff-fence", a["producer_id"], a["producer_epoch"], True)
    # before PRODUCER_FENCED existed (KIP-588: EndTxn / AddPartitionsToTxn v2) Kafka answers INVALID_PRODUCER_EPOCH
    out["fence_add_partitions_old_epoch_v1"] = add_partitions(ctx, "diff-fence", a["producer_id"],
                                                              a["producer_epoch"], T_ERR, [0], version=1)
    out["fence_end_txn_old_epoch_v1"] = end_txn(ctx, "diff-fence", a["producer_id"], a["producer_epoch"], True,
                                                version=1)
    for v in (3, 4):  # v4 added PRODUCER_FENCED (KIP-588); v3 answers INVALID_PRODUCER_EPOCH instead
        out[f"fence_init_with_old_epoch_v{v}"] = ename(ctx.raw.call(
            InitProducerIdRequest, v, transactional_id="diff-fence", transaction_timeout_ms=60000,
            producer_id=a["producer_id"], producer_epoch=a["producer_epoch"])["error_code"])
    out["fence_produce_old_epoch"] = produce_raw(
        ctx, T_ERR, 0, records_bytes([(BASE_TS, b"k", b"v")], b["producer_id"], a["producer_epoch"], 0, True),
        txid="diff-fence")
    # fenced producer, client: two confluent producers, same transactional.id
    p1 = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": "diff-fence-client", "linger.ms": 0})
    p1.init_transactions(DEADLINE_S)
    p1.begin_transaction()
    p1.produce(T_ERR, key=b"f", value=b"fenced-1")
    p1.flush(DEADLINE_S)
    p2 = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": "diff-fence-client", "linger.ms": 0})
    p2.init_transactions(DEADLINE_S)
    try:
        p1.produce(T_ERR, key=b"f", value=b"fenced-2")
        p1.flush(10)
        p1.commit_transaction(DEADLINE_S)
        out["client_fenced_commit"] = "NONE"
    except KafkaException as e:
        err = e.args[0]
        out["client_fenced_commit"] = {"name": err.name(), "fatal": err.fatal()}
    p2.begin_transaction()
    p2.produce(T_ERR, key=b"f", value=b"from-p2")
    p2.commit_transaction(DEADLINE_S)

    # --- an idempotent producer re-initialised with its id and epoch (KIP-360)
    i1 = init_pid(ctx, None, version=4)
    i2 = init_pid(ctx, None, pid=i1["producer_id"], epoch=i1["producer_epoch"], version=4)
    out["idempotent_reinit_kip360"] = {"errors": [ename(i1["error_code"]), ename(i2["error_code"])],
                                       "same_producer_id": i1["producer_id"] == i2["producer_id"],
                                       "epoch_delta": i2["producer_epoch"] - i1["producer_epoch"]}

    # --- invalid transaction state
    ctx.coordinator_ready("diff-state", 1)
    s = init_pid(ctx, "diff-state")
    pid, ep = s["producer_id"], s["producer_epoch"]
    out["end_txn_commit_without_txn"] = end_txn(ctx, "diff-state", pid, ep, True)
    out["end_txn_abort_without_txn"] = end_txn(ctx, "diff-state", pid, ep, False)
    out["end_txn_unknown_txid"] = end_txn(ctx, "diff-state-unknown", 12345, 0, True)
    out["end_txn_wrong_producer_id"] = end_txn(ctx, "diff-state", pid + 1000, ep, True)
    tc = ctx.raw.call(TxnOffsetCommitRequest, 3, transactional_id="diff-state", group_id="diff-state-g",
                      producer_id=pid, producer_epoch=ep, generation_id=-1, member_id="",
                      group_instance_id=None,
                      topics=[{"name": T_ERR, "partitions": [
                          {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                           "committed_metadata": ""}]}])
    out["txn_offset_commit_without_add_offsets"] = sorted(
        ename(pp["error_code"]) for t in tc["topics"] for pp in t["partitions"])
    # produce transactional without AddPartitionsToTxn
    out["produce_txn_without_add_partitions"] = produce_raw(
        ctx, T_ERR, 0, records_bytes([(BASE_TS, b"k", b"v")], pid, ep, 0, True), txid="diff-state")
    # a committed transaction, then commit again / abort (retry of the same kind vs the other kind)
    out["add_partitions"] = add_partitions(ctx, "diff-state", pid, ep, T_ERR, [0])
    out["produce_txn_after_add"] = produce_raw(
        ctx, T_ERR, 0, records_bytes([(BASE_TS, b"k", b"v")], pid, ep, 0, True), txid="diff-state")["error"]
    out["end_txn_commit"] = end_txn(ctx, "diff-state", pid, ep, True)

    def commit_retry():  # Kafka answers CONCURRENT_TRANSACTIONS until the markers are written
        e = end_txn(ctx, "diff-state", pid, ep, True)
        return None if e == "CONCURRENT_TRANSACTIONS" else e
    out["end_txn_commit_retry"] = poll_until("EndTxn commit retry", commit_retry)

    def abort_after_commit():
        e = end_txn(ctx, "diff-state", pid, ep, False)
        return None if e == "CONCURRENT_TRANSACTIONS" else e
    out["end_txn_abort_after_commit"] = poll_until("EndTxn abort after commit", abort_after_commit)
    # client: commit without begin (surfaced by the client)
    p3 = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": "diff-state-client"})
    p3.init_transactions(DEADLINE_S)
    try:
        p3.commit_transaction(10)
        out["client_commit_without_begin"] = "NONE"
    except KafkaException as e:
        out["client_commit_without_begin"] = e.args[0].name()

    # --- stale generation (classic group, raw)
    ctx.coordinator_ready("diff-gen", 0)
    j0 = retry_call(ctx.raw, "JoinGroup", lambda r: r["error_code"], JoinGroupRequest, 5, group_id="diff-gen",
                    session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="", group_instance_id=None,
                    protocol_type="consumer", protocols=[{"name": "range", "metadata": b"\x00"}])
    out["join_without_member_id"] = ename(j0["error_code"])
    mid = j0["member_id"]
    j1 = join(ctx, "diff-gen", mid)
    g1 = j1["generation_id"]
    out["join_1"] = {"error": ename(j1["error_code"]), "leader_is_self": j1["leader"] == mid,
                     "members": len(j1["members"]), "protocol": j1["protocol_name"]}
    sg = ctx.raw.call(SyncGroupRequest, 3, group_id="diff-gen", generation_id=g1, member_id=mid,
                      group_instance_id=None, assignments=[{"member_id": mid, "assignment": b""}])
    out["sync_1"] = ename(sg["error_code"])
    j2 = join(ctx, "diff-gen", mid, meta=b"\x01")  # changed metadata: a rebalance, the next generation
    g2 = j2["generation_id"]
    out["join_2"] = {"error": ename(j2["error_code"]), "generation_delta": g2 - g1}
    out["sync_2"] = ename(ctx.raw.call(SyncGroupRequest, 3, group_id="diff-gen", generation_id=g2, member_id=mid,
                                       group_instance_id=None,
                                       assignments=[{"member_id": mid, "assignment": b""}])["error_code"])

    def commit(gen, member):
        r = ctx.raw.call(OffsetCommitRequest, 8, group_id="diff-gen", generation_id_or_member_epoch=gen,
                         member_id=member, group_instance_id=None,
                         topics=[{"name": T_ERR, "partitions": [
                             {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                              "committed_metadata": "member-meta"}]}])
        return [ename(pp["error_code"]) for t in r["topics"] for pp in t["partitions"]]
    out["offset_commit_current_generation"] = commit(g2, mid)
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-gen", require_stable=False,
                     topics=[{"name": T_ERR, "partition_indexes": [0]}])
    out["offset_fetch_after_member_commit"] = [(pp["committed_offset"], pp["metadata"], ename(pp["error_code"]))
                                               for t in r["topics"] for pp in t["partitions"]]
    out["offset_commit_stale_generation"] = commit(g1, mid)
    out["offset_commit_future_generation"] = commit(g2 + 5, mid)
    out["offset_commit_unknown_member"] = commit(g2, "diff-unknown-member")
    out["offset_commit_simple_no_member"] = commit(-1, "")
    out["heartbeat_stale_generation"] = ename(ctx.raw.call(
        HeartbeatRequest, 3, group_id="diff-gen", generation_id=g1, member_id=mid,
        group_instance_id=None)["error_code"])
    out["heartbeat_current_generation"] = ename(ctx.raw.call(
        HeartbeatRequest, 3, group_id="diff-gen", generation_id=g2, member_id=mid,
        group_instance_id=None)["error_code"])
    out["sync_stale_generation"] = ename(ctx.raw.call(
        SyncGroupRequest, 3, group_id="diff-gen", generation_id=g1, member_id=mid, group_instance_id=None,
        assignments=[])["error_code"])
    out["join_unknown_member"] = ename(join(ctx, "diff-gen", "diff-unknown-member")["error_code"])
    out["join_inconsistent_protocol_type"] = ename(ctx.raw.call(
        JoinGroupRequest, 5, group_id="diff-gen", session_timeout_ms=10000, rebalance_timeout_ms=10000,
        member_id=mid, group_instance_id=None, protocol_type="connect",
        protocols=[{"name": "range", "metadata": b"\x00"}])["error_code"])
    lv = ctx.raw.call(LeaveGroupRequest, 3, group_id="diff-gen",
                      members=[{"member_id": mid, "group_instance_id": None}])
    out["leave"] = [ename(lv["error_code"])] + [ename(m["error_code"]) for m in lv["members"]]
    out["offset_commit_after_leave_old_member"] = commit(g2, mid)
    doc["errors"] = out


def scenario_admin(ctx, doc):
    out = {}

    def create(name, parts=1, rf=1):
        r = ctx.raw.call(CreateTopicsRequest, 5, topics=[{"name": name, "num_partitions": parts,
                                                            "replication_factor": rf, "assignments": [],
                                                            "configs": []}],
                         timeout_ms=30000, validate_only=False)
        return [ename(t["error_code"]) for t in r["topics"]]
    out["create_duplicate"] = create(T_OFF)
    out["create_invalid_slash"] = create("diff/bad")
    out["create_invalid_dot"] = create(".")
    out["create_invalid_dotdot"] = create("..")
    out["create_invalid_empty"] = create("")
    out["create_invalid_too_long"] = create("d" * 250)
    out["create_invalid_char"] = create("diff bad")
    out["create_zero_partitions"] = create("diff-zero-parts", parts=0)
    out["create_bad_replication"] = create("diff-rf3", rf=3)
    r = ctx.raw.call(DeleteTopicsRequest, 5, topic_names=["diff-nope-delete"], timeout_ms=30000)
    out["delete_unknown"] = [ename(t["error_code"]) for t in r["responses"]]
    r = ctx.raw.call(DescribeGroupsRequest, 5, groups=["diff-nope-group"], include_authorized_operations=False)
    out["describe_unknown_group"] = [{"error": ename(g["error_code"]), "state": g["group_state"],
                                      "protocol_type": g["protocol_type"], "protocol": g["protocol_data"],
                                      "members": len(g["members"])} for g in r["groups"]]
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-nope-group", require_stable=False,
                     topics=[{"name": T_OFF, "partition_indexes": [0]}])
    out["offset_fetch_no_commits"] = {"error": ename(r["error_code"]), "partitions": [
        (pp["partition_index"], pp["committed_offset"], pp["metadata"], ename(pp["error_code"]))
        for t in r["topics"] for pp in t["partitions"]]}
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-nope-group", require_stable=False, topics=None)
    out["offset_fetch_no_commits_all_topics"] = {"error": ename(r["error_code"]), "topics": len(r["topics"])}
    out["create_default_partitions_and_rf"] = create("diff-defaults", parts=-1, rf=-1)
    r = ctx.raw.call(MetadataRequest, 12, topics=[{"name": "diff-defaults"}], allow_auto_topic_creation=False)
    out["create_default_partitions_count"] = [len(t["partitions"]) for t in r["topics"]]
    r = ctx.raw.call(CreateTopicsRequest, 5, topics=[{"name": "diff-validate-only", "num_partitions": 2,
                                                        "replication_factor": 1, "assignments": [], "configs": []}],
                     timeout_ms=30000, validate_only=True)
    out["create_validate_only"] = [(ename(t["error_code"]), t["num_partitions"]) for t in r["topics"]]
    r = ctx.raw.call(MetadataRequest, 12, topics=[{"name": "diff-validate-only"}], allow_auto_topic_creation=False)
    out["validate_only_not_created"] = [ename(t["error_code"]) for t in r["topics"]]
    out["create_bad_config"] = [ename(t["error_code"]) for t in ctx.raw.call(
        CreateTopicsRequest, 5, topics=[{"name": "diff-bad-config", "num_partitions": 1, "replication_factor": 1,
                                         "assignments": [],
                                         "configs": [{"name": "cleanup.policy", "value": "bogus"}]}],
        timeout_ms=30000, validate_only=False)["topics"]]
    out["create_unknown_config"] = [ename(t["error_code"]) for t in ctx.raw.call(
        CreateTopicsRequest, 5, topics=[{"name": "diff-unknown-config", "num_partitions": 1, "replication_factor": 1,
                                         "assignments": [],
                                         "configs": [{"name": "no.such.config", "value": "1"}]}],
        timeout_ms=30000, validate_only=False)["topics"]]
    # delete an existing topic, then its metadata, a produce to it, a second delete
    out["delete_existing"] = [ename(t["error_code"]) for t in ctx.raw.call(
        DeleteTopicsRequest, 5, topic_names=["diff-defaults"], timeout_ms=30000)["responses"]]

    def gone():
        r = ctx.raw.call(MetadataRequest, 12, topics=[{"name": "diff-defaults"}], allow_auto_topic_creation=False)
        e = ename(r["topics"][0]["error_code"])
        return e if e != "NONE" else None
    out["metadata_after_delete"] = poll_until("deleted topic gone from metadata", gone)
    out["delete_again"] = [ename(t["error_code"]) for t in ctx.raw.call(
        DeleteTopicsRequest, 5, topic_names=["diff-defaults"], timeout_ms=30000)["responses"]]
    # the group of the group scenario, everyone gone: Empty with its protocol type
    r = ctx.raw.call(DescribeGroupsRequest, 5, groups=["diff-g"], include_authorized_operations=False)
    out["describe_empty_group"] = [{"error": ename(g["error_code"]), "state": g["group_state"],
                                    "protocol_type": g["protocol_type"], "members": len(g["members"])}
                                   for g in r["groups"]]
    # committed offsets of a group, asked for an unknown topic and an unknown partition
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-g", require_stable=False,
                     topics=[{"name": "diff-nope", "partition_indexes": [0]},
                             {"name": T_GRP, "partition_indexes": [9]}])
    out["offset_fetch_unknown_topic_and_partition"] = {"error": ename(r["error_code"]), "partitions": sorted(
        (t["name"], pp["partition_index"], pp["committed_offset"], ename(pp["error_code"]))
        for t in r["topics"] for pp in t["partitions"])}
    r = ctx.raw.call(OffsetCommitRequest, 8, group_id="diff-simple", generation_id_or_member_epoch=-1,
                     member_id="", group_instance_id=None,
                     topics=[{"name": "diff-nope", "partitions": [
                         {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                          "committed_metadata": ""}]},
                         {"name": T_OFF, "partitions": [
                             {"partition_index": 0, "committed_offset": 5, "committed_leader_epoch": -1,
                              "committed_metadata": "m"},
                             {"partition_index": 9, "committed_offset": 5, "committed_leader_epoch": -1,
                              "committed_metadata": ""}]}])
    out["offset_commit_simple_group_unknown_topic_partition"] = sorted(
        (t["name"], pp["partition_index"], ename(pp["error_code"])) for t in r["topics"] for pp in t["partitions"])
    r = ctx.raw.call(OffsetFetchRequest, 7, group_id="diff-simple", require_stable=False, topics=None)
    out["offset_fetch_simple_group_all"] = sorted(
        (t["name"], pp["partition_index"], pp["committed_offset"], pp["metadata"], ename(pp["error_code"]))
        for t in r["topics"] for pp in t["partitions"])
    # ListOffsets on an empty topic; Fetch at the log end (no records, no error)
    ctx.create_topic("diff-empty", 1)
    out["empty_topic_offsets"] = {n: ctx.list_offset("diff-empty", 0, t) for n, t in
                                  (("earliest", -2), ("latest", -1), ("max_timestamp", -3), ("time", BASE_TS))}
    out["fetch_at_log_end"] = fetch_raw(ctx, "diff-empty", 0, 0)
    doc["admin"] = out


# ------------------------------------------------------------ comparison
# Legitimate differences: (path regex over the flattened document, reason).
# A path matching one of these is reported as "allowed" and does not fail the
# run. Keep every entry commented with why the difference is not a bug.
ALLOW = [
    # KIP-360: InitProducerId without a transactional id but with the producer's
    # current id and epoch (an idempotent producer recovering). Kafka hands out a
    # NEW producer id at epoch 0; sluice keeps the id and bumps the epoch. Both
    # fence the old (id, epoch) and reset its sequences, which is all KIP-360
    # asks; clients take whatever id/epoch comes back. Errors (NONE) are compared.
    (r"^/errors/idempotent_reinit_kip360/(same_producer_id|epoch_delta)$",
     "KIP-360 idempotent re-init: Kafka gives a new producer id, sluice the same id at epoch+1"),
]


def flatten(x, path=""):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            out.update(flatten(v, f"{path}/{k}"))
        return out or {path: {}}
    if isinstance(x, list):
        out = {}
        for i, v in enumerate(x):
            out.update(flatten(v, f"{path}[{i}]"))
        return out or {path: []}
    return {path: x}


def compare(ref_path, test_path, ref_name="kafka", test_name="sluice"):
    import re
    ref, test = (flatten(json.load(open(p))) for p in (ref_path, test_path))
    ref_doc, test_doc = (json.load(open(p)) for p in (ref_path, test_path))
    diffs, allowed = [], []
    for path in sorted(set(ref) | set(test)):
        a, b = ref.get(path, "<absent>"), test.get(path, "<absent>")
        if a == b:
            continue
        why = next((reason for rx, reason in ALLOW if re.search(rx, path)), None)
        (allowed if why else diffs).append((path, a, b, why))
    scen = sorted(set(ref_doc) | set(test_doc))
    for name in scen:
        n = sum(1 for p in set(ref) | set(test) if p.startswith(f"/{name}/"))
        d = sum(1 for p, *_ in diffs if p.startswith(f"/{name}/"))
        print(f"{name:10s} {n:4d} observations, {d:3d} different -> {'EQUAL' if d == 0 else 'DIFFERENT'}")
    for path, a, b, why in allowed:
        print(f"allowed  {path}: {ref_name}={json.dumps(a)} {test_name}={json.dumps(b)}  ({why})")
    for path, a, b, _ in diffs:
        print(f"DIFF     {path}: {ref_name}={json.dumps(a)} {test_name}={json.dumps(b)}")
    print(f"differential: {len(diffs)} differences, {len(allowed)} allowed")
    return 1 if diffs else 0


SCENARIOS = [("offsets", scenario_offsets), ("consume", scenario_consume), ("group", scenario_group),
             ("errors", scenario_errors), ("admin", scenario_admin)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--compare", nargs=2, metavar=("KAFKA_JSON", "SLUICE_JSON"),
                    help="compare two documents (allow-list applied); exit 1 on a difference")
    ap.add_argument("--out")
    ap.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    a = ap.parse_args()
    global BASE_TS
    BASE_TS = (int(time.time() * 1000) // 60000) * 60000 + 30 * 60000
    if a.compare:
        sys.exit(compare(*a.compare))
    if not a.bootstrap:
        ap.error("--bootstrap or --compare is required")
    ctx = Ctx(a.bootstrap)
    doc = {}
    failed = 0
    for name, fn in SCENARIOS:
        if a.only and name not in a.only:
            continue
        log(f"scenario {name}")
        try:
            fn(ctx, doc)
        except Exception as e:  # the failure itself is an observation
            failed += 1
            traceback.print_exc()
            doc.setdefault(name, {})["_scenario_failed"] = f"{type(e).__name__}: {e}"
            ctx.raw.close()
            ctx.raw = Raw(a.bootstrap)
    text = json.dumps(doc, indent=1, sort_keys=True, default=str)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    log(f"done ({failed} scenarios raised)")


if __name__ == "__main__":
    main()
