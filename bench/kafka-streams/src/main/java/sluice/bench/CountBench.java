package sluice.bench;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams counterpart of {@code sluice perf eos} (cli/src/perf/eos.rs): a count-by-key
 * topology (source -> count in a persistent RocksDB store -> sink, one output record per input)
 * runs over N pre-produced records, once at_least_once and once exactly_once_v2, each from a
 * clean state on the same input; then, with the exactly-once app running, records are produced at
 * a steady rate and the end-to-end latency (produce to visible to a read_committed reader) is
 * measured. Prints one JSON line of the same shape as sluice's (without its commit_latency_ms).
 *
 * <pre>
 * java -cp 'count-bench.jar:JARS/*' sluice.bench.CountBench --records N --keys K --state-dir DIR
 *   [--threads 2] [--partitions 4] [--commit-interval-ms 100] [--latency-rate 20000]
 *   [--latency-seconds 3] [--bootstrap 127.0.0.1:9092] [--max-poll-records 10000] [--caching]
 * </pre>
 */
public final class CountBench {
    static final String INPUT = "perf-eos-in";

    // ------------------------------------------------------------------ arguments

    static final class Args {
        long records = -1;
        long keys = -1;
        int threads = 2;
        int partitions = 4;
        long commitIntervalMs = 100;
        long latencyRate = 20_000;
        long latencySeconds = 3;
        String bootstrap = "127.0.0.1:9092";
        Path stateDir;
        /** Consumer max.poll.records; sluice's bench sets 10000. 0 = the Kafka Streams default. */
        int maxPollRecords = 10_000;
        /** Enables the store's record cache (off by default, as the brief's builder). */
        boolean caching = false;

        static Args parse(String[] argv) {
            Args a = new Args();
            for (int i = 0; i < argv.length; i++) {
                String flag = argv[i];
                if (flag.equals("--caching")) {
                    a.caching = true;
                    continue;
                }
                if (i + 1 >= argv.length) {
                    throw new IllegalArgumentException("missing value for " + flag);
                }
                String v = argv[++i];
                switch (flag) {
                    case "--records": a.records = Long.parseLong(v); break;
                    case "--keys": a.keys = Long.parseLong(v); break;
                    case "--threads": a.threads = Integer.parseInt(v); break;
                    case "--partitions": a.partitions = Integer.parseInt(v); break;
                    case "--commit-interval-ms": a.commitIntervalMs = Long.parseLong(v); break;
                    case "--latency-rate": a.latencyRate = Long.parseLong(v); break;
                    case "--latency-seconds": a.latencySeconds = Long.parseLong(v); break;
                    case "--bootstrap": a.bootstrap = v; break;
                    case "--state-dir": a.stateDir = Paths.get(v); break;
                    case "--max-poll-records": a.maxPollRecords = Integer.parseInt(v); break;
                    default: throw new IllegalArgumentException("unknown argument " + flag);
                }
            }
            if (a.records < 1 || a.keys < 1 || a.threads < 1 || a.partitions < 1
                    || a.commitIntervalMs < 1 || a.latencyRate < 1 || a.latencySeconds < 1
                    || a.stateDir == null) {
                throw new IllegalArgumentException(
                        "need --records N>=1 --keys K>=1 --state-dir DIR (and positive options)");
            }
            return a;
        }
    }

    // ------------------------------------------------------------------ topology

    /** Counts per key in the "counts" store, forwarding each new count. */
    static final class CountByKey implements Processor<String, Long, String, Long> {
        private ProcessorContext<String, Long> ctx;
        private KeyValueStore<String, Long> counts;

        @Override
        public void init(ProcessorContext<String, Long> ctx) {
            this.ctx = ctx;
            this.counts = ctx.getStateStore("counts");
        }

        @Override
        public void process(Record<String, Long> record) {
            Long old = counts.get(record.key());
            long count = (old == null ? 0L : old) + 1;
            counts.put(record.key(), count);
            ctx.forward(record.withValue(count));
        }
    }

    static Topology topology(String output, boolean caching) {
        StoreBuilder<KeyValueStore<String, Long>> store = Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore("counts"), Serdes.String(), Serdes.Long());
        if (caching) {
            store = store.withCachingEnabled();
        }
        Topology t = new Topology();
        t.addSource("in", new StringDeserializer(), new LongDeserializer(), INPUT);
        t.addProcessor("count", CountByKey::new, "in");
        t.addStateStore(store, "count");
        t.addSink("out", output, new StringSerializer(), new LongSerializer(), "count");
        return t;
    }

    // ------------------------------------------------------------------ admin helpers

    static void recreate(Admin admin, String topic, int partitions) throws Exception {
        if (admin.listTopics().names().get().contains(topic)) {
            admin.deleteTopics(List.of(topic)).all().get();
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
                return;
            } catch (ExecutionException e) {
                // A just-deleted topic may still be being removed.
                if (!(e.getCause() instanceof TopicExistsException) || System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
    }

    static Map<TopicPartition, Long> inputEnd(Admin admin, int partitions) throws Exception {
        Map<TopicPartition, OffsetSpec> req = new LinkedHashMap<>();
        for (int p = 0; p < partitions; p++) {
            req.put(new TopicPartition(INPUT, p), OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResultInfo> res = admin.listOffsets(req).all().get();
        Map<TopicPartition, Long> ends = new LinkedHashMap<>();
        for (TopicPartition tp : req.keySet()) {
            ends.put(tp, res.get(tp).offset());
        }
        return ends;
    }

    /** Sum of the group's committed input offsets, or -1 - sum if some partition is behind. */
    static long committed(Admin admin, String group, Map<TopicPartition, Long> ends) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> c =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        long sum = 0;
        boolean all = true;
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            OffsetAndMetadata om = c.get(e.getKey());
            long off = om == null ? 0 : om.offset();
            sum += off;
            if (off < e.getValue()) {
                all = false;
            }
        }
        return all ? sum : -1 - sum;
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
                Files.delete(f);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null) {
                    throw e;
                }
                Files.delete(d);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    static void log(String msg) {
        System.err.printf("[CountBench %tT] %s%n", System.currentTimeMillis(), msg);
    }

    // ------------------------------------------------------------------ phases

    static Properties producerProps(Args a) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, LongSerializer.class.getName());
        return p;
    }

    /** Pre-produces N records, key "key-(i % K)", value 1L (8-byte big-endian). Not timed. */
    static void produce(Args a) throws Exception {
        AtomicReference<Exception> failed = new AtomicReference<>();
        long t0 = System.nanoTime();
        try (KafkaProducer<String, Long> producer = new KafkaProducer<>(producerProps(a))) {
            for (long i = 0; i < a.records; i++) {
                producer.send(new ProducerRecord<>(INPUT, "key-" + (i % a.keys), 1L), (md, e) -> {
                    if (e != null) {
                        failed.compareAndSet(null, e);
                    }
                });
                if (failed.get() != null) {
                    break;
                }
            }
            producer.flush();
        }
        if (failed.get() != null) {
            throw failed.get();
        }
        log(String.format("produced %d input records in %.1f s", a.records,
                (System.nanoTime() - t0) / 1e9));
    }

    static final class Running {
        final KafkaStreams streams;
        final AtomicReference<Throwable> error;

        Running(KafkaStreams streams, AtomicReference<Throwable> error) {
            this.streams = streams;
            this.error = error;
        }

        void check() {
            KafkaStreams.State s = streams.state();
            if (error.get() != null || s == KafkaStreams.State.ERROR
                    || s == KafkaStreams.State.PENDING_ERROR
                    || s == KafkaStreams.State.NOT_RUNNING
                    || s == KafkaStreams.State.PENDING_SHUTDOWN) {
                throw new IllegalStateException("Kafka Streams app is " + s, error.get());
            }
        }

        void close() {
            if (!streams.close(Duration.ofSeconds(60))) {
                log("WARNING: Kafka Streams did not close within 60 s");
            }
        }
    }

    static Running start(Admin admin, Args a, boolean eos) throws Exception {
        String id = eos ? "perf-eos-eos" : "perf-eos-alos";
        String output = eos ? "perf-eos-out-eos" : "perf-eos-out-alos";
        recreate(admin, output, a.partitions);
        deleteRecursively(a.stateDir.resolve(id));
        Properties s = new Properties();
        s.put(StreamsConfig.APPLICATION_ID_CONFIG, id);
        s.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
        s.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                eos ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        s.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.threads);
        s.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.commitIntervalMs);
        s.put(StreamsConfig.STATE_DIR_CONFIG, a.stateDir.toString());
        s.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        if (a.maxPollRecords > 0) {
            s.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), a.maxPollRecords);
        }
        KafkaStreams streams = new KafkaStreams(topology(output, a.caching), s);
        AtomicReference<Throwable> error = new AtomicReference<>();
        streams.setUncaughtExceptionHandler(e -> {
            error.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        return new Running(streams, error);
    }

    /**
     * Runs one mode over the whole input: seconds from the app's start (including recreating its
     * output topic and removing its old state, as sluice's bench) until the group's committed
     * offsets reach the end of every input partition. Returns the still running app.
     */
    static Running throughput(Admin admin, Args a, boolean eos, double[] seconds) throws Exception {
        String group = eos ? "perf-eos-eos" : "perf-eos-alos";
        Map<TopicPartition, Long> ends = inputEnd(admin, a.partitions);
        long started = System.nanoTime();
        Running app = start(admin, a, eos);
        long lastLog = started;
        while (true) {
            long c = committed(admin, group, ends);
            if (c >= 0) {
                break;
            }
            app.check();
            long now = System.nanoTime();
            if (now - lastLog > TimeUnit.SECONDS.toNanos(2)) {
                lastLog = now;
                log(String.format("%s: %.1f s, committed %d / %d", eos ? "eos" : "alos",
                        (now - started) / 1e9, -1 - c, a.records));
            }
            Thread.sleep(2);
        }
        seconds[0] = (System.nanoTime() - started) / 1e9;
        log(String.format("%s: done in %.3f s", eos ? "eos" : "alos", seconds[0]));
        return app;
    }

    /** The key of the record that warms the latency producer up (not measured). */
    static final String WARM_UP_KEY = "warm-up";

    /** End-to-end latency samples in ms (now - record timestamp at a read_committed reader). */
    static long[] latency(Args a) throws Exception {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        final long total = a.latencyRate * a.latencySeconds;
        long[] samples = new long[(int) total];
        int n = 0;
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (int p = 0; p < a.partitions; p++) {
                parts.add(new TopicPartition("perf-eos-out-eos", p));
            }
            consumer.assign(parts);
            consumer.seekToEnd(parts);
            for (TopicPartition tp : parts) {
                consumer.position(tp); // resolve the end now, before producing
            }
            AtomicReference<Exception> failed = new AtomicReference<>();
            Thread producerThread = new Thread(() -> {
                Properties pp = producerProps(a);
                pp.put(ProducerConfig.LINGER_MS_CONFIG, 5); // as sluice's perf eos (cli/src/perf/eos.rs)
                try (KafkaProducer<String, Long> producer = new KafkaProducer<>(pp)) {
                    // Warm-up, as sluice's: the first send waits for metadata and a
                    // producer id; one record sent before the paced stream keeps that wait
                    // out of the figures, and the reader skips its output.
                    producer.send(new ProducerRecord<>(INPUT, null, System.currentTimeMillis(),
                            WARM_UP_KEY, 1L)).get();
                    long t0 = System.nanoTime();
                    for (long i = 0; i < total; i++) {
                        long due = t0 + (long) (i * 1e9 / a.latencyRate);
                        long wait = due - System.nanoTime();
                        if (wait > 0) {
                            LockSupport.parkNanos(wait);
                        }
                        producer.send(new ProducerRecord<>(INPUT, null, System.currentTimeMillis(),
                                "key-" + (i % a.keys), 1L), (md, e) -> {
                                    if (e != null) {
                                        failed.compareAndSet(null, e);
                                    }
                                });
                    }
                    producer.flush();
                } catch (Exception e) {
                    failed.compareAndSet(null, e);
                }
            }, "latency-producer");
            producerThread.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(a.latencySeconds + 30);
            while (n < total && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(5))) {
                    if (n < total && !WARM_UP_KEY.equals(r.key())) {
                        samples[n++] = Math.max(0, System.currentTimeMillis() - r.timestamp());
                    }
                }
            }
            producerThread.join();
            if (failed.get() != null) {
                throw failed.get();
            }
        }
        if (n < total) {
            log(String.format("WARNING: latency phase saw %d of %d records before its deadline", n, total));
        }
        return Arrays.copyOf(samples, n);
    }

    // ------------------------------------------------------------------ JSON

    /** Rounded to the given decimals, as sluice's json_number (null for NaN / infinite). */
    static String num(double x, int decimals) {
        if (Double.isNaN(x) || Double.isInfinite(x)) {
            return "null";
        }
        double scale = Math.pow(10, decimals);
        double r = Math.round(x * scale) / scale;
        return BigDecimal.valueOf(r).toPlainString();
    }

    /** Nearest-rank percentile of sorted, non-empty samples. */
    static long percentile(long[] sorted, double p) {
        int rank = (int) Math.ceil((p / 100.0) * sorted.length);
        rank = Math.max(1, Math.min(sorted.length, rank));
        return sorted[rank - 1];
    }

    static String latencyJson(long[] samples) {
        if (samples.length == 0) {
            return "\"latency_ms\":null";
        }
        Arrays.sort(samples);
        return String.format("\"latency_ms\":{\"p50\":%s,\"p99\":%s,\"max\":%s,\"samples\":%d}",
                num(percentile(samples, 50), 3), num(percentile(samples, 99), 3),
                num(samples[samples.length - 1], 3), samples.length);
    }

    // ------------------------------------------------------------------ main

    public static void main(String[] argv) {
        int rc = 0;
        try {
            System.out.println(bench(Args.parse(argv)));
            System.out.flush();
        } catch (Throwable e) {
            e.printStackTrace();
            rc = 1;
        }
        System.exit(rc);
    }

    static String bench(Args a) throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
        try (Admin admin = Admin.create(ap)) {
            recreate(admin, INPUT, a.partitions);
            produce(a);

            double[] alos = new double[1];
            throughput(admin, a, false, alos).close();

            double[] eos = new double[1];
            Running app = throughput(admin, a, true, eos);
            long[] samples;
            try {
                samples = latency(a);
                app.check();
            } finally {
                app.close();
            }

            String mode0 = String.format("{\"seconds\":%s,\"records_per_sec\":%s}",
                    num(alos[0], 6), num(a.records / Math.max(alos[0], 1e-9), 1));
            String mode1 = String.format("{\"seconds\":%s,\"records_per_sec\":%s}",
                    num(eos[0], 6), num(a.records / Math.max(eos[0], 1e-9), 1));
            return String.format("{\"records\":%d,\"keys\":%d,\"threads\":%d,\"partitions\":%d,"
                            + "\"commit_interval_ms\":%d,\"alos\":%s,\"eos\":%s,\"eos_over_alos\":%s,%s}",
                    a.records, a.keys, a.threads, a.partitions, a.commitIntervalMs, mode0, mode1,
                    num(alos[0] / Math.max(eos[0], 1e-9), 3), latencyJson(samples));
        }
    }
}
