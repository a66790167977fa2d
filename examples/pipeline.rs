//! One log, many independent consumers: the log as the central data pipeline.
//!
//! A background thread writes a realistic application log file (timestamps, levels
//! INFO/WARN/ERROR, services, requests, status codes, latencies) in bursts, sometimes
//! cutting a line in two between writes, and ends it with a marker line. A tailer follows
//! the file as it grows (like `tail -f`), ships each complete line to the topic `app-log`
//! (keyed by service, so each service's lines stay in order) and stops at the marker.
//!
//! Three consumers read `app-log`, each in its own consumer group, each at its own pace,
//! none knowing of the others:
//! - `log-metrics`, a DSL app: lines per level (`group_by` level + `count`, through a
//!   repartition topic), requests per service and the maximum latency per service
//!   (`group_by_key` + `count` / `aggregate`); every update goes to `log-metrics`;
//! - `csv-sink`, a plain group consumer (a member of the group and a consumer of the
//!   partitions it is given, through the `Cluster` seam, so the same code runs on the
//!   embedded log and on Kafka): each line parsed into a row of a CSV file, offsets
//!   committed after each batch is on disk (a Kafka Connect-style sink, at least once: a
//!   crash between the write and the commit would write those rows again);
//! - `log-alerts`, a DSL app: ERROR lines and slow requests (`filter`) to the topic
//!   `alerts`.
//!
//! When all of them have caught up, it prints each one's result and checks it against
//! what was written to the file; it exits non-zero if any disagrees.
//!
//! ```text
//! cargo run --release --example pipeline [-- --lines 5000 --seed 7 --dir D]
//! cargo run --release --example pipeline -- --bootstrap-servers HOST:PORT
//! ```
//!
//! `--dir D` keeps the log file, the CSV file and the broker's data in D (a fresh
//! directory: the topics must not exist yet); by default they go to a temporary directory.
//! With `--bootstrap-servers HOST:PORT` the topics are on that Kafka cluster (Apache Kafka
//! or `sluice broker`) instead of the embedded log, and the topic names, app ids and the
//! CSV sink's group end in a run id (`app-log-<run>` ...), so a rerun starts afresh.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Names, OnCluster, Res, Rng, RunningApp, Target};
use sluice::dsl::StreamBuilder;
use sluice::log::cluster::{
    Cluster, ClusterConsumer, ConsumerSpec, GroupEvent, GroupMember, GroupSpec, OffsetAt,
    ProducerSpec, TxnProducer,
};
use sluice::prelude::*;
use sluice::runtime::AppConfig;
use sluice::runtime::topology::Topology;

const TOPIC: &str = "app-log";
const PARTITIONS: i32 = 3;
const END_MARKER: &str = "# end of log";
const SERVICES: [&str; 5] = ["auth", "catalog", "checkout", "payments", "search"];
/// A request this slow (ms) raises an alert.
const SLOW_MS: u64 = 1_000;
/// 2025-03-14T00:00:00Z in ms since the epoch: the day the log is from.
const DAY_START_MS: i64 = 1_741_910_400_000;

/// One parsed line of the log:
/// `2025-03-14T09:00:00.412Z INFO  checkout req=000001 GET /api/cart status=200 latency_ms=23`.
#[derive(Debug, Clone, PartialEq)]
struct LogLine<'a> {
    time: &'a str,
    level: &'a str,
    service: &'a str,
    request: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: u64,
}

impl<'a> LogLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut f = line.split_whitespace();
        let parsed = Self {
            time: f.next()?,
            level: f.next()?,
            service: f.next()?,
            request: f.next()?.strip_prefix("req=")?,
            method: f.next()?,
            path: f.next()?,
            status: f.next()?.strip_prefix("status=")?.parse().ok()?,
            latency_ms: f.next()?.strip_prefix("latency_ms=")?.parse().ok()?,
        };
        f.next().is_none().then_some(parsed)
    }

    /// Why this line is an alert, if it is one.
    fn alert(&self) -> Option<&'static str> {
        if self.level == "ERROR" {
            Some("error")
        } else if self.latency_ms >= SLOW_MS {
            Some("slow")
        } else {
            None
        }
    }

    /// The time as ms since the epoch (`None` if it is not this day's `HH:MM:SS.mmmZ`).
    fn timestamp_ms(&self) -> Option<i64> {
        let clock = self.time.strip_prefix("2025-03-14T")?.strip_suffix('Z')?;
        let (hms, ms) = clock.split_once('.')?;
        let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(DAY_START_MS + ((h * 60 + m) * 60 + s) * 1_000 + ms.parse::<i64>().ok()?)
    }

    /// The line as a CSV row (no field here needs quoting, but any that did would get it).
    fn csv_row(&self) -> String {
        let status = self.status.to_string();
        let latency = self.latency_ms.to_string();
        let fields = [
            self.time,
            self.level,
            self.service,
            self.request,
            self.method,
            self.path,
            &status,
            &latency,
        ];
        fields.map(csv_field).join(",")
    }
}

const CSV_HEADER: &str = "time,level,service,request,method,path,status,latency_ms";

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The log's lines, generated from `seed`: mostly fast INFO requests, some WARN (client
/// errors, throttling), a few ERROR (server errors), and a slow tail.
fn generate(seed: u64, lines: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut clock_ms = 9 * 3_600_000;
    (1..=lines)
        .map(|request| {
            clock_ms += rng.below(40) as i64;
            let service = rng.pick(&SERVICES);
            let path = match service {
                "auth" => rng.pick(&["/login", "/logout", "/token/refresh"]),
                "catalog" => rng.pick(&["/products", "/products/42", "/categories"]),
                "checkout" => rng.pick(&["/api/cart", "/api/cart/items", "/api/order"]),
                "payments" => rng.pick(&["/pay", "/refund", "/pay/status"]),
                _ => rng.pick(&["/search?q=shoes", "/search?q=lamp", "/suggest?q=so"]),
            };
            let method = if path.contains('?') || rng.below(3) > 0 {
                "GET"
            } else {
                "POST"
            };
            let roll = rng.below(100);
            let (level, status) = match roll {
                0..=3 => ("ERROR", if rng.below(2) == 0 { 500 } else { 503 }),
                4..=13 => ("WARN", [404, 409, 429][rng.below(3) as usize]),
                _ => ("INFO", if method == "POST" { 201 } else { 200 }),
            };
            let latency_ms = match rng.below(1000) {
                0..=14 => 1_000 + rng.below(4_000),
                15..=99 => 200 + rng.below(800),
                _ => 2 + rng.below(120),
            };
            let (h, m) = (clock_ms / 3_600_000, clock_ms / 60_000 % 60);
            let (s, ms) = (clock_ms / 1_000 % 60, clock_ms % 1_000);
            format!(
                "2025-03-14T{h:02}:{m:02}:{s:02}.{ms:03}Z {level:<5} {service} req={request:06} {method} {path} status={status} latency_ms={latency_ms}"
            )
        })
        .collect()
}

/// Appends `lines` to `path` in bursts of 1 to 64 lines, a burst now and then ending in
/// the middle of a line, then the end marker.
fn write_log(path: &Path, lines: &[String], seed: u64) -> Res<()> {
    let mut rng = Rng::new(seed ^ 0xF11E);
    let mut file = File::create(path)?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let mut cut = 0;
        for _ in 0..1 + rng.below(64) {
            cut += rest[cut..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
        }
        if rng.below(4) == 0 && cut < rest.len() {
            cut += 1 + rng.below(20) as usize; // stop inside the next line
        }
        let (burst, after) = rest.split_at(cut.min(rest.len()));
        file.write_all(burst)?;
        file.flush()?;
        rest = after;
        std::thread::sleep(Duration::from_millis(1));
    }
    writeln!(file, "{END_MARKER}")?;
    Ok(())
}

/// What the tailer did.
#[derive(Debug, Default)]
struct Tailed {
    /// Lines shipped to the topic.
    lines: usize,
    /// Reads that returned data.
    reads: usize,
    /// Reads that ended in the middle of a line (its rest came with a later read).
    partial: usize,
}

/// Follows `path` as it grows and ships each complete line to `topic` (`app-log`) until
/// the end marker.
fn tail<P: TxnProducer>(path: &Path, producer: &mut P, topic: &str) -> Res<Tailed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut file = loop {
        match File::open(path) {
            Ok(file) => break file,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e.into()),
        }
    };
    let (mut pending, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
    let mut tailed = Tailed::default();
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            if Instant::now() > deadline {
                return Err("the end marker never came".into());
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        tailed.reads += 1;
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8(raw)?.trim_end().to_string();
            if line == END_MARKER {
                producer.flush()?;
                return Ok(tailed);
            }
            let service = LogLine::parse(&line).map_or("unparsed", |l| l.service);
            let mut record = ProducerRecord::new(topic, line.clone()).with_key(service.to_string());
            if let Some(ms) = LogLine::parse(&line).and_then(|l| l.timestamp_ms()) {
                record = record.with_timestamp(ms);
            }
            producer.send(record)?;
            tailed.lines += 1;
        }
        if !pending.is_empty() {
            tailed.partial += 1;
        }
    }
}

/// The metrics app: lines per level, requests and max latency per service.
fn metrics_topology(names: &Names) -> Res<Topology> {
    let (topic, metrics) = (names.of(TOPIC), names.of("log-metrics"));
    let b = StreamBuilder::new();
    let lines = b
        .stream::<String, String>(&topic)
        .filter(|_, line| LogLine::parse(line).is_some());
    lines
        .group_by(|_, line| LogLine::parse(line).map_or_else(String::new, |l| l.level.into()))
        .count("level-counts") // a key change: through `<app id>-level-counts-repartition`
        .to_stream()
        .map(|level, n| (format!("level/{level}"), n))
        .to(&metrics);
    let by_service = lines.group_by_key(); // keyed by service already: no repartition
    by_service
        .count("service-counts")
        .to_stream()
        .map(|service, n| (format!("requests/{service}"), n))
        .to(&metrics);
    by_service
        .aggregate(
            "max-latency",
            || 0u64,
            |_, line, max| max.max(LogLine::parse(&line).map_or(0, |l| l.latency_ms)),
        )
        .to_stream()
        .map(|service, max| (format!("max-latency-ms/{service}"), max))
        .to(&metrics);
    Ok(b.build()?)
}

/// The alerts app: ERROR lines and slow requests, with the reason.
fn alerts_topology(names: &Names) -> Res<Topology> {
    let b = StreamBuilder::new();
    b.stream::<String, String>(&names.of(TOPIC))
        .filter(|_, line| LogLine::parse(line).is_some_and(|l| l.alert().is_some()))
        .map_values(|line| {
            let reason = LogLine::parse(&line).and_then(|l| l.alert()).unwrap_or("?");
            format!("{reason}: {line}")
        })
        .to(&names.of("alerts"));
    Ok(b.build()?)
}

/// The CSV sink: a plain consumer in group `group` (`csv-sink`) writing a row per line of
/// `topic` to `path` and committing after each batch, until `shipped` is set and it has
/// read everything. A member of the group learns which partitions are its own (all of
/// them, as it is alone), and a consumer reads them from the group's committed offsets.
fn csv_sink<C: Cluster>(
    cluster: &C,
    (topic, group): (&str, &str),
    path: &Path,
    shipped: &AtomicBool,
) -> Res<usize> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "{CSV_HEADER}")?;
    let mut member = cluster.member(&GroupSpec::new(group, vec![vec![topic.to_string()]]))?;
    let mut consumer = cluster.consumer(&ConsumerSpec::read_committed(group))?;
    let mut assigned: Vec<TopicPartition> = Vec::new();
    let (mut rows, deadline) = (0, Instant::now() + Duration::from_secs(60));
    loop {
        let done = shipped.load(Ordering::Acquire);
        // Keeps the membership alive; a new generation says which partitions are ours.
        if let GroupEvent::Assigned(assignment) = member.poll_group(Duration::from_millis(20))? {
            assigned = assignment
                .partitions
                .iter()
                .map(|&(_, p)| TopicPartition::new(topic, p))
                .collect();
            let mut starts = Vec::new();
            for (tp, committed) in member.committed(&assigned)? {
                let start = match committed {
                    Some(offset) => offset,
                    None => cluster.list_offset(&tp, OffsetAt::Earliest)?,
                };
                starts.push((tp, start));
            }
            consumer.assign(&starts)?;
        }
        let records = match assigned.is_empty() {
            true => Vec::new(),
            false => consumer.poll(Duration::from_millis(20))?,
        };
        for r in &records {
            let line = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            match LogLine::parse(&line) {
                Some(parsed) => writeln!(out, "{}", parsed.csv_row())?,
                None => eprintln!("csv-sink: skipping an unparsable line: {line}"),
            }
            rows += 1;
        }
        if !records.is_empty() {
            out.flush()?; // the rows are on disk before their offsets are committed
            let mut offsets = Vec::new();
            for tp in &assigned {
                offsets.push((tp.clone(), consumer.position(tp)?));
            }
            member.commit_offsets(&offsets)?;
        } else if done && common::caught_up(cluster, group, &[topic])? {
            member.leave()?;
            return Ok(rows);
        } else if Instant::now() > deadline {
            return Err("the CSV sink did not catch up within 60 s".into());
        }
    }
}

fn main() -> Res<()> {
    let (mut lines, mut seed, mut keep, mut servers) = (5_000usize, 7u64, None::<PathBuf>, None);
    let usage = "[--lines N] [--seed N] [--dir D] [--bootstrap-servers HOST:PORT]";
    let names = ["--lines", "--seed", "--dir", "--bootstrap-servers"];
    for (name, value) in common::named_args(&names, usage)? {
        match name.as_str() {
            "--lines" => lines = value.parse()?,
            "--seed" => seed = value.parse()?,
            "--dir" => keep = Some(value.into()),
            _ => servers = Some(value),
        }
    }
    let temp = tempfile::tempdir()?;
    let dir = keep.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir)?;
    Target::new(servers).run(&dir.join("log"), Pipeline { lines, seed, dir })
}

/// The example, on whichever cluster [`Target`] chose.
struct Pipeline<'a> {
    lines: usize,
    seed: u64,
    /// Where the log file, the CSV file and the apps' state go.
    dir: &'a Path,
}

impl OnCluster for Pipeline<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        run(cluster, names, self)
    }
}

fn run<C: Backend>(broker: &C, names: &Names, options: Pipeline<'_>) -> Res<()> {
    let Pipeline { lines, seed, dir } = options;
    let started = Instant::now();
    // The log is from a fixed day in the past, and records keep its timestamps: keep them
    // whatever their age (a Kafka cluster's retention would delete them otherwise).
    let topics = TopicConfig::default()
        .with_partitions(PARTITIONS)
        .with_retention_ms(None);
    common::create_topics(broker, names, &[TOPIC, "log-metrics", "alerts"], &topics)?;

    // The consumers start first and follow the topic as it fills.
    let topologies = [
        ("log-metrics", metrics_topology(names)?),
        ("log-alerts", alerts_topology(names)?),
    ];
    let mut apps = Vec::new();
    for (id, topology) in topologies {
        let config = AppConfig::default().with_state_dir(dir.join(id));
        apps.push(RunningApp::start(broker, &names.of(id), topology, config)?);
    }
    let shipped_all = Arc::new(AtomicBool::new(false));
    let csv_path = dir.join("app-log.csv");
    let csv = {
        let (broker, path, shipped) = (broker.clone(), csv_path.clone(), shipped_all.clone());
        let (topic, group) = (names.of(TOPIC), names.of("csv-sink"));
        std::thread::spawn(move || csv_sink(&broker, (&topic, &group), &path, &shipped))
    };

    // The application writes its log; the tailer ships it.
    let written = generate(seed, lines);
    let log_path: PathBuf = dir.join("app.log");
    let writer = {
        let (path, lines) = (log_path.clone(), written.clone());
        std::thread::spawn(move || write_log(&path, &lines, seed))
    };
    let mut producer = broker.producer(&ProducerSpec::idempotent("pipeline-tailer"))?;
    let tailed = tail(&log_path, &mut producer, &names.of(TOPIC))?;
    producer.close()?;
    let shipped = tailed.lines;
    shipped_all.store(true, Ordering::Release);
    writer.join().map_err(|_| "the log writer panicked")??;
    println!(
        "pipeline: {} lines written to {} ({} KB) in bursts and tailed into {TOPIC} ({PARTITIONS} partitions): {shipped} lines shipped in {:.2} s, {} reads of the growing file, {} ending mid-line",
        written.len(),
        log_path.display(),
        std::fs::metadata(&log_path)?.len() / 1024,
        started.elapsed().as_secs_f64(),
        tailed.reads,
        tailed.partial
    );

    // Wait for every consumer to catch up.
    let csv_rows = csv.join().map_err(|_| "the CSV sink panicked")??;
    let deadline = Instant::now() + Duration::from_secs(60);
    for app in &apps {
        let waited = app.wait_caught_up(Some(deadline));
        waited.map_err(|e| format!("{}: {e}", app.id))?;
    }
    for app in apps {
        app.handle.shutdown()?;
    }
    let consumed = started.elapsed();

    let failures = check(broker, names, &written, shipped, (&csv_path, csv_rows))?;
    println!(
        "all consumers caught up {:.2} s after the start",
        consumed.as_secs_f64()
    );
    common::conclude(&failures)
}

/// Prints each consumer's result and returns the ones that disagree with `written`.
fn check<C: Cluster>(
    broker: &C,
    names: &Names,
    written: &[String],
    shipped: usize,
    (csv_path, csv_rows): (&Path, usize),
) -> Res<Vec<String>> {
    let mut failures = Vec::new();
    let parsed: Vec<LogLine> = written.iter().filter_map(|l| LogLine::parse(l)).collect();
    if shipped != written.len() || parsed.len() != written.len() {
        failures.push(format!(
            "{} lines written, {} parse, {shipped} shipped",
            written.len(),
            parsed.len()
        ));
    }
    let in_topic = common::read_committed(broker, &names.of(TOPIC))?.len();
    println!("{TOPIC}: {in_topic} records");
    if in_topic != written.len() {
        failures.push(format!(
            "{TOPIC} holds {in_topic} records of {}",
            written.len()
        ));
    }

    // (a) metrics: the last value of each key is its total.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for l in &parsed {
        *expected.entry(format!("level/{}", l.level)).or_default() += 1;
        *expected
            .entry(format!("requests/{}", l.service))
            .or_default() += 1;
        let max = expected
            .entry(format!("max-latency-ms/{}", l.service))
            .or_default();
        *max = (*max).max(l.latency_ms);
    }
    let metrics = common::latest_u64_by_key(broker, &names.of("log-metrics"))?;
    let get = |key: String| metrics.get(&key).copied().unwrap_or(0);
    let levels = ["INFO", "WARN", "ERROR"].map(|l| format!("{l} {}", get(format!("level/{l}"))));
    println!("consumer log-metrics (DSL group_by/group_by_key + count/aggregate):");
    println!("  lines per level: {}", levels.join(", "));
    for service in SERVICES {
        println!(
            "  {service:<9} {:>5} requests, max latency {:>5} ms",
            get(format!("requests/{service}")),
            get(format!("max-latency-ms/{service}"))
        );
    }
    let metrics_agree = metrics == expected;
    println!("  metrics agree with the file: {metrics_agree}");
    if !metrics_agree {
        failures.push("log-metrics differs from the counts of the file".into());
    }

    // (b) the CSV file: the same rows (in the order of each service's lines).
    let csv = std::fs::read_to_string(csv_path)?;
    let mut lines = csv.lines();
    let header_ok = lines.next() == Some(CSV_HEADER);
    let mut rows: Vec<&str> = lines.collect();
    let want_rows: Vec<String> = parsed.iter().map(LogLine::csv_row).collect();
    let mut want: Vec<&str> = want_rows.iter().map(String::as_str).collect();
    let of_service = |rows: &[&str], service: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.split(',').nth(2) == Some(service))
            .map(|r| r.to_string())
            .collect()
    };
    let in_order = SERVICES
        .iter()
        .all(|s| of_service(&rows, s) == of_service(&want, s));
    rows.sort_unstable();
    want.sort_unstable();
    let csv_agrees = header_ok && in_order && rows == want && csv_rows == written.len();
    println!(
        "consumer csv-sink (plain group consumer): {} rows in {}; per-service order kept: {in_order}; rows agree with the file: {csv_agrees}",
        rows.len(),
        csv_path.display()
    );
    if !csv_agrees {
        failures.push(format!(
            "the CSV file has {} rows of {}",
            rows.len(),
            want.len()
        ));
    }

    // (c) alerts.
    let mut alerts: Vec<String> = common::read_committed(broker, &names.of("alerts"))?
        .into_iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let mut want: Vec<String> = written
        .iter()
        .filter_map(|l| Some(format!("{}: {l}", LogLine::parse(l)?.alert()?)))
        .collect();
    alerts.sort_unstable();
    want.sort_unstable();
    let errors = alerts.iter().filter(|a| a.starts_with("error:")).count();
    let alerts_agree = alerts == want;
    println!(
        "consumer log-alerts (DSL filter to `alerts`): {} alerts ({errors} errors, {} slow); alerts agree with the file: {alerts_agree}",
        alerts.len(),
        alerts.len() - errors
    );
    if !alerts_agree {
        failures.push(format!("{} alerts of {}", alerts.len(), want.len()));
    }
    Ok(failures)
}
