//! The topology graph: validation errors name what is wrong, sub-topologies split at
//! repartition topics and stay joined through shared stores, and `describe` shows it all.

use sluice_runtime::topology::{TopologyBuilder, TopologyError};

fn wordcount() -> TopologyBuilder {
    let mut b = TopologyBuilder::new();
    b.add_source("lines", &["text-input"]).expect("source");
    b.add_processor("split", &["lines"]).expect("processor");
    b.add_sink("to-words", "words-repartition", &["split"])
        .expect("sink");
    b.add_source("words", &["words-repartition"])
        .expect("source");
    b.add_processor("count", &["words"]).expect("processor");
    b.add_state_store("counts", &["count"]).expect("store");
    b.add_sink("out", "word-counts", &["count"]).expect("sink");
    b
}

#[test]
fn wordcount_splits_at_its_repartition_topic() {
    let topology = wordcount().build().expect("valid");
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
    b.add_source("a", &["ta"]).expect("source");
    b.add_processor("pa", &["a"]).expect("processor");
    b.add_source("b", &["tb"]).expect("source");
    b.add_processor("pb", &["b"]).expect("processor");
    b.add_state_store("shared", &["pa", "pb"]).expect("store");
    assert_eq!(b.build().expect("valid").sub_topologies().len(), 1);
}

#[test]
fn invalid_topologies_are_refused_with_the_reason() {
    let cases: Vec<(TopologyBuilder, TopologyError)> = vec![
        {
            let mut b = TopologyBuilder::new();
            b.add_source("s", &["t"]).expect("source");
            b.add_processor("p", &["nope"]).expect("processor");
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
            b.add_source("s", &["t"]).expect("source");
            b.add_processor("p", &["s", "q"]).expect("processor");
            b.add_processor("q", &["p"]).expect("processor");
            (b, TopologyError::Cycle("p".into()))
        },
        {
            let mut b = wordcount();
            b.add_state_store("orphan", &[]).expect("store");
            (b, TopologyError::UnconnectedStore("orphan".into()))
        },
        {
            let mut b = wordcount();
            b.add_state_store("on-source", &["lines"]).expect("store");
            (
                b,
                TopologyError::StoreOnNonProcessor {
                    store: "on-source".into(),
                    node: "lines".into(),
                },
            )
        },
        {
            let mut b = wordcount();
            b.add_processor("after-sink", &["out"]).expect("processor");
            (
                b,
                TopologyError::SinkAsParent {
                    node: "after-sink".into(),
                    parent: "out".into(),
                },
            )
        },
        {
            let mut b = wordcount();
            b.add_source("again", &["text-input"]).expect("source");
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
            b.add_processor("floating", &[]).expect("processor");
            (
                b,
                TopologyError::Unconnected("floating".into(), "it has no parent"),
            )
        },
    ];
    for (builder, want) in cases {
        assert_eq!(builder.build().err(), Some(want));
    }
    let mut b = wordcount();
    assert_eq!(
        b.add_processor("count", &["lines"]).err(),
        Some(TopologyError::DuplicateName("count".into()))
    );
    assert_eq!(
        b.add_state_store("split", &["count"]).err(),
        Some(TopologyError::DuplicateName("split".into()))
    );
}
