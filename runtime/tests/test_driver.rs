//! The TopologyTestDriver: records flow through processors, repartition topics and stores
//! synchronously; punctuations fire on stream time and on the simulated wall clock;
//! `forward_to` picks one child; record metadata, headers and window stores reach the
//! processor; bad records go where the handler says; misuse gets clear errors.

mod common;

use std::time::Duration;

use common::apps::{Agg, Count, CountSum, Pass, wordcount_builder};
use sluice_runtime::processor::{
    ProcessResult, Processor, ProcessorContext, PunctuationType, Record,
};
use sluice_runtime::serde::{BigEndianSerde, BincodeSerde, StringSerde, UnitSerde};
use sluice_runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_runtime::topology::{StoreSpec, TopologyBuilder};
use sluice_runtime::{DeserializationHandler, Error};

#[test]
fn wordcount_flows_through_the_repartition_topic_and_the_store() {
    let mut driver =
        TopologyTestDriver::new(wordcount_builder().build().expect("topology")).expect("driver");
    let lines = TestInputTopic::new("text-input", UnitSerde, StringSerde);
    let counts = TestOutputTopic::<String, u64>::new("word-counts", StringSerde, BigEndianSerde);
    driver
        .pipe_input(&lines, (), "b a b".to_string(), 10)
        .expect("pipe");
    driver
        .pipe_input(&lines, (), "a".to_string(), 20)
        .expect("pipe");
    let out: Vec<(String, u64, i64)> = driver
        .read_output(&counts)
        .expect("read")
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        out,
        vec![
            ("b".into(), 1, 10),
            ("a".into(), 1, 10),
            ("b".into(), 2, 10),
            ("a".into(), 2, 20)
        ]
    );
    assert!(
        driver.read_output(&counts).expect("read").is_empty(),
        "read_output drains"
    );
    let store = driver.kv_store::<String, u64>("counts").expect("store");
    assert_eq!(
        common::read_all(store.all()),
        vec![("a".to_string(), 2), ("b".to_string(), 2)]
    );
    assert!(matches!(
        driver.kv_store::<String, String>("counts"),
        Err(Error::StoreType { .. })
    ));
    assert!(driver.kv_store::<String, u64>("nope").is_err());
}

/// Emits, per punctuation, the stream or wall-clock time that fired it, and keeps a
/// window store of records per 10 ms window; routes odd values to `odd` only.
#[derive(Debug, Default)]
struct Clocked;

impl Processor<String, i64, String, i64> for Clocked {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> ProcessResult {
        ctx.schedule(Duration::from_millis(100), PunctuationType::StreamTime)?;
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime)?;
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> ProcessResult {
        let meta = ctx
            .record_metadata()
            .cloned()
            .expect("metadata while processing");
        let mut windows = ctx.window_store::<String, i64>("per-window")?;
        let start = record.timestamp - record.timestamp % 10;
        let seen = windows
            .fetch(&record.key, start, start)?
            .next()
            .transpose()?
            .map_or(0, |(_, n)| n);
        windows.put(&record.key, start, &(seen + 1))?;
        let tagged = record
            .clone()
            .with_header("offset", meta.offset.to_string());
        if record.value % 2 == 1 {
            ctx.forward_to("odd", tagged)?;
        } else {
            ctx.forward(tagged)?;
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        kind: PunctuationType,
        timestamp: i64,
    ) -> ProcessResult {
        assert!(ctx.record_metadata().is_none());
        let key = match kind {
            PunctuationType::StreamTime => "stream-time",
            PunctuationType::WallClockTime => "wall-clock",
        };
        ctx.forward_to("ticks", Record::new(key.to_string(), timestamp, timestamp))?;
        Ok(())
    }
}

fn clocked() -> sluice_runtime::topology::Topology {
    let mut b = TopologyBuilder::new();
    b.add_source::<String, i64>("in", &["in"], StringSerde, BigEndianSerde)
        .expect("source");
    b.add_processor("clocked", &["in"], Clocked::default)
        .expect("processor");
    b.add_state_store(
        StoreSpec::window::<String, i64>(
            "per-window",
            StringSerde,
            BigEndianSerde,
            Duration::from_secs(60),
        ),
        &["clocked"],
    )
    .expect("store");
    b.add_sink::<String, i64>("ticks", "ticks", &["clocked"], StringSerde, BigEndianSerde)
        .expect("sink");
    b.add_sink::<String, i64>("odd", "odd", &["clocked"], StringSerde, BigEndianSerde)
        .expect("sink");
    b.build().expect("topology")
}

#[test]
fn punctuations_fire_on_stream_time_and_the_wall_clock_and_forward_to_picks_a_child() {
    let mut driver = TopologyTestDriver::new(clocked()).expect("driver");
    let input = TestInputTopic::new("in", StringSerde, BigEndianSerde);
    let ticks = TestOutputTopic::<String, i64>::new("ticks", StringSerde, BigEndianSerde);
    let odd = TestOutputTopic::<String, i64>::new("odd", StringSerde, BigEndianSerde);
    for (value, ts) in [(2i64, 5i64), (3, 7), (4, 50), (6, 106), (8, 300)] {
        driver
            .pipe_input(&input, "k".to_string(), value, ts)
            .expect("pipe");
    }
    let out: Vec<(String, i64)> = driver
        .read_output(&ticks)
        .expect("ticks")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    // Even values go to every child (ticks and odd); stream time first reaches 5, then
    // fires at >= 105 (at 106) and >= 206 (at 300).
    assert_eq!(
        out,
        vec![
            ("k".into(), 2),
            ("k".into(), 4),
            ("k".into(), 6),
            ("stream-time".into(), 106),
            ("k".into(), 8),
            ("stream-time".into(), 300),
        ]
    );
    let odd_out = driver.read_output(&odd).expect("odd");
    let odd_values: Vec<i64> = odd_out.iter().map(|r| r.value).collect();
    assert_eq!(odd_values, vec![2, 3, 4, 6, 8]);
    let header = odd_out[1]
        .headers
        .iter()
        .find(|h| h.key == "offset")
        .expect("header");
    assert_eq!(header.value.as_deref(), Some(&b"1"[..]));
    // The wall clock starts at 0; it fires at 1000 and then every second.
    driver
        .advance_wall_clock(Duration::from_millis(999))
        .expect("advance");
    assert!(driver.read_output(&ticks).expect("ticks").is_empty());
    driver
        .advance_wall_clock(Duration::from_millis(1))
        .expect("advance");
    driver
        .advance_wall_clock(Duration::from_millis(1000))
        .expect("advance");
    let wall: Vec<(String, i64)> = driver
        .read_output(&ticks)
        .expect("ticks")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        wall,
        vec![("wall-clock".into(), 1000), ("wall-clock".into(), 2000)]
    );
    let windows = driver
        .window_store::<String, i64>("per-window")
        .expect("window store");
    assert_eq!(
        common::read_all(windows.fetch(&"k".to_string(), 0, 1000)),
        vec![(0, 2), (50, 1), (100, 1), (300, 1)]
    );
}

#[test]
fn bad_records_and_processor_errors_in_the_driver() {
    let topology = || {
        let mut b = TopologyBuilder::new();
        b.add_source::<String, i64>("in", &["in"], StringSerde, BigEndianSerde)
            .expect("source");
        b.add_processor("count-sum", &["in"], || CountSum)
            .expect("processor");
        b.add_state_store(
            StoreSpec::key_value("agg", StringSerde, BincodeSerde::<Agg>::default()),
            &["count-sum"],
        )
        .expect("store");
        b.add_sink(
            "out",
            "out",
            &["count-sum"],
            StringSerde,
            BincodeSerde::<Agg>::default(),
        )
        .expect("sink");
        b.build().expect("topology")
    };
    let mut failing = TopologyTestDriver::new(topology()).expect("driver");
    let err = failing
        .pipe_raw("in", Some("k".into()), Some(b"xyz"[..].into()), 1)
        .expect_err("bad value");
    assert_eq!(
        err.to_string(),
        "cannot deserialize the record at in-0 offset 0: cannot (de)serialize i64: expected 8 bytes, got 3"
    );
    let mut dlq = TopologyTestDriver::with_handler(
        topology(),
        DeserializationHandler::DeadLetter {
            topic: "dlq".into(),
        },
    )
    .expect("driver");
    dlq.pipe_raw("in", Some("k".into()), Some(b"xyz"[..].into()), 1)
        .expect("to the dlq");
    dlq.pipe_raw(
        "in",
        Some("k".into()),
        Some(5i64.to_be_bytes().to_vec().into()),
        2,
    )
    .expect("good record");
    let dead = dlq.read_raw_output("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"xyz"[..]));
    assert_eq!(dlq.read_raw_output("out").len(), 1);
    assert!(dlq.pipe_raw("nowhere", None, None, 0).is_err());

    // A processor asking for a store it is not connected to.
    #[derive(Debug)]
    struct Sneaky;
    impl Processor<String, String> for Sneaky {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            r: Record<String, String>,
        ) -> ProcessResult {
            ctx.kv_store::<String, u64>("counts")?;
            ctx.forward(r)?;
            Ok(())
        }
    }
    let mut b = TopologyBuilder::new();
    b.add_source("in", &["in"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("sneaky", &["in"], || Sneaky)
        .expect("processor");
    b.add_processor("count", &["in"], || Count)
        .expect("processor");
    b.add_processor("pass", &["count"], Pass::<String, u64>::default)
        .expect("processor");
    b.add_state_store(
        StoreSpec::key_value::<String, u64>("counts", StringSerde, BigEndianSerde),
        &["count"],
    )
    .expect("store");
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let input = TestInputTopic::new("in", StringSerde, StringSerde);
    let err = driver
        .pipe_input(&input, "k".to_string(), "v".to_string(), 1)
        .expect_err("not connected");
    assert_eq!(
        err.to_string(),
        "processor `sneaky` failed on in-0 at offset 0: processor `sneaky` is not connected to state store `counts` (add it with add_state_store)"
    );
}
