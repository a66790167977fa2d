//! The topology: validation errors name what is wrong (including edge types that do not
//! match), sub-topologies split at repartition topics and stay joined through shared
//! stores, and `describe` shows it all.

mod common;

use common::apps::{Count, Pass, Split, wordcount_builder};
use sluice_runtime::serde::{BigEndianSerde, StringSerde, UnitSerde};
use sluice_runtime::topology::{StoreSpec, TopologyBuilder, TopologyError};

fn kv(name: &str) -> StoreSpec {
    StoreSpec::key_value::<String, u64>(name, StringSerde, BigEndianSerde)
}

#[test]
fn wordcount_splits_at_its_repartition_topic() {
    let topology = wordcount_builder().build().expect("valid");
    let subs = topology.sub_topologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].nodes, vec!["lines", "split", "to-words"]);
    assert_eq!(subs[1].nodes, vec!["words", "count", "out"]);
    assert!(subs[1].stores.contains("counts"));
    assert!(subs[0].stores.is_empty());
    assert_eq!(
        topology.internal_topics().into_iter().collect::<Vec<_>>(),
        vec!["words-repartition"]
    );
    assert_eq!(
        topology
            .external_source_topics()
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["text-input"]
    );
    assert_eq!(topology.reader_of("words-repartition"), Some(1));
    let text = topology.describe();
    for line in [
        "Sub-topology: 0",
        "Source: lines (topics: [text-input])",
        "--> split",
        "Processor: count (stores: [counts])",
        "Sink: out (topic: word-counts)",
        "<-- count",
    ] {
        assert!(text.contains(line), "describe() lacks {line:?}:\n{text}");
    }
}

#[test]
fn a_store_shared_by_two_processors_joins_their_sub_topologies() {
    let mut b = TopologyBuilder::new();
    b.add_source("a", &["ta"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("pa", &["a"], Pass::<String, String>::default)
        .expect("processor");
    b.add_source("b", &["tb"], StringSerde, StringSerde)
        .expect("source");
    b.add_processor("pb", &["b"], Pass::<String, String>::default)
        .expect("processor");
    b.add_state_store(kv("shared"), &["pa", "pb"])
        .expect("store");
    assert_eq!(b.build().expect("valid").sub_topologies().len(), 1);
}

#[test]
fn invalid_topologies_are_refused_with_the_reason() {
    let source = |b: &mut TopologyBuilder, name: &str, topic: &str| {
        b.add_source(name, &[topic], StringSerde, StringSerde)
            .expect("source");
    };
    let pass = |b: &mut TopologyBuilder, name: &str, parents: &[&str]| {
        b.add_processor(name, parents, Pass::<String, String>::default)
            .expect("processor");
    };
    let cases: Vec<(TopologyBuilder, TopologyError)> = vec![
        {
            let mut b = TopologyBuilder::new();
            source(&mut b, "s", "t");
            pass(&mut b, "p", &["nope"]);
            (
                b,
                TopologyError::UnknownParent {
                    node: "p".into(),
                    parent: "nope".into(),
                },
            )
        },
        {
            let mut b = TopologyBuilder::new();
            source(&mut b, "s", "t");
            pass(&mut b, "p", &["s", "q"]);
            pass(&mut b, "q", &["p"]);
            (b, TopologyError::Cycle("p".into()))
        },
        {
            let mut b = wordcount_builder();
            b.add_state_store(kv("orphan"), &[]).expect("store");
            (b, TopologyError::UnconnectedStore("orphan".into()))
        },
        {
            let mut b = wordcount_builder();
            b.add_state_store(kv("on-source"), &["lines"])
                .expect("store");
            (
                b,
                TopologyError::StoreOnNonProcessor {
                    store: "on-source".into(),
                    node: "lines".into(),
                },
            )
        },
        {
            let mut b = wordcount_builder();
            b.add_processor("after-sink", &["out"], Pass::<String, u64>::default)
                .expect("processor");
            (
                b,
                TopologyError::SinkAsParent {
                    node: "after-sink".into(),
                    parent: "out".into(),
                },
            )
        },
        {
            let mut b = wordcount_builder();
            b.add_source("again", &["text-input"], UnitSerde, StringSerde)
                .expect("source");
            (
                b,
                TopologyError::TopicReadTwice {
                    topic: "text-input".into(),
                    first: "lines".into(),
                    second: "again".into(),
                },
            )
        },
        {
            let mut b = TopologyBuilder::new();
            pass(&mut b, "floating", &[]);
            (
                b,
                TopologyError::Unconnected("floating".into(), "it has no parent"),
            )
        },
        {
            // Count takes <String, String>; the source forwards <(), String>.
            let mut b = TopologyBuilder::new();
            b.add_source("lines", &["t"], UnitSerde, StringSerde)
                .expect("source");
            b.add_processor("count", &["lines"], || Count)
                .expect("processor");
            (
                b,
                TopologyError::TypeMismatch {
                    node: "count".into(),
                    parent: "lines".into(),
                    expected: "<alloc::string::String, alloc::string::String>".into(),
                    found: "<(), alloc::string::String>".into(),
                },
            )
        },
    ];
    for (builder, want) in cases {
        assert_eq!(builder.build().err(), Some(want));
    }
    let mut b = wordcount_builder();
    assert_eq!(
        b.add_processor("count", &["lines"], || Split).err(),
        Some(TopologyError::DuplicateName("count".into()))
    );
    assert_eq!(
        b.add_state_store(kv("split"), &["count"]).err(),
        Some(TopologyError::DuplicateName("split".into()))
    );
}

#[test]
fn a_type_mismatch_message_names_both_sides() {
    let mut b = TopologyBuilder::new();
    b.add_source("lines", &["t"], UnitSerde, StringSerde)
        .expect("source");
    b.add_sink("out", "o", &["lines"], StringSerde, StringSerde)
        .expect("sink");
    let message = b.build().expect_err("mismatch").to_string();
    assert!(
        message.contains("`out` takes <alloc::string::String, alloc::string::String>")
            && message.contains("`lines` forwards <(), alloc::string::String>"),
        "{message}"
    );
}

#[test]
fn an_app_names_declared_internal_topics_after_itself() {
    let mut b = wordcount_builder();
    b.declare_internal_topic("words-repartition");
    let topology = b.build().expect("valid");
    // The topology as built (and as the test driver runs it) keeps the declared names.
    assert_eq!(
        topology.internal_topics().into_iter().collect::<Vec<_>>(),
        vec!["words-repartition"]
    );
    let owned = topology.for_application("wc").expect("renamed");
    assert_eq!(
        owned.internal_topics().into_iter().collect::<Vec<_>>(),
        vec!["wc-words-repartition"]
    );
    assert_eq!(owned.reader_of("wc-words-repartition"), Some(1));
    assert_eq!(owned.reader_of("words-repartition"), None);
    assert!(
        owned.sub_topologies()[0]
            .sink_topics
            .contains("wc-words-repartition")
    );
    // Topics not declared (the app's input and output) keep their names.
    assert_eq!(
        owned
            .external_source_topics()
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["text-input"]
    );
    assert!(
        owned.sub_topologies()[1]
            .sink_topics
            .contains("word-counts")
    );
    assert!(
        owned
            .describe()
            .contains("Sink: to-words (topic: wc-words-repartition)")
    );
    // Without declarations nothing changes.
    let plain = wordcount_builder().build().expect("valid");
    let same = plain.for_application("wc").expect("unchanged");
    assert_eq!(same.internal_topics(), plain.internal_topics());
}

#[test]
fn sources_are_listed_upstream_first_whatever_their_names() {
    // zz-in -> b-mid -> a-mid2 -> out: by name the order would be the reverse.
    let mut b = TopologyBuilder::new();
    b.add_source("in", &["zz-in"], StringSerde, StringSerde)
        .expect("source");
    b.add_sink("to-b", "b-mid", &["in"], StringSerde, StringSerde)
        .expect("sink");
    b.add_source("b", &["b-mid"], StringSerde, StringSerde)
        .expect("source");
    b.add_sink("to-a", "a-mid2", &["b"], StringSerde, StringSerde)
        .expect("sink");
    b.add_source("a", &["a-mid2"], StringSerde, StringSerde)
        .expect("source");
    b.add_sink("out", "out", &["a"], StringSerde, StringSerde)
        .expect("sink");
    let topology = b.build().expect("topology");
    assert_eq!(
        topology.source_topics_upstream_first(),
        ["zz-in", "b-mid", "a-mid2"]
    );
}
