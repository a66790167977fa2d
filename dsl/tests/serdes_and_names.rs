//! Serdes chosen by type and overridden per operator (the bytes in the topics show which
//! one wrote them), and `named` naming processors, stores and internal topics.

use sluice_dsl::runtime::serde::{JsonSerde, Serde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TopologyTestDriver};
use sluice_dsl::{Data, JoinWindows, StreamBuilder, bincode_data};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    celsius: i32,
}
bincode_data!(Reading);

fn reading(celsius: i32) -> Reading {
    Reading {
        sensor: "s1".into(),
        celsius,
    }
}

#[test]
fn the_type_chooses_the_serde_unless_an_operator_overrides_it() {
    let b = StreamBuilder::new();
    let readings = b.stream::<String, Reading>("readings");
    readings.to("as-bincode");
    readings
        .with_value_serde(JsonSerde::<Reading>::default())
        .to("as-json");
    readings
        .group_by_key()
        .count("counts")
        .map_values_with(|k, n| format!("{k}:{n}"), StringSerde)
        .to_stream()
        .to("labels");
    let mut driver = TopologyTestDriver::new(b.build().expect("topology")).expect("driver");
    let input = TestInputTopic::new("readings", StringSerde, <Reading as Data>::serde());
    driver
        .pipe_input(&input, "k".into(), reading(21), 0)
        .expect("pipe");
    let value = |topic: &str, driver: &mut TopologyTestDriver| -> Vec<u8> {
        let out = driver.read_raw_output(topic);
        assert_eq!(out.len(), 1, "{topic}");
        out[0].value.clone().expect("a value").to_vec()
    };
    let bincode = value("as-bincode", &mut driver);
    assert_eq!(
        <Reading as Data>::serde()
            .deserialize(&bincode)
            .expect("bincode"),
        reading(21)
    );
    let json = value("as-json", &mut driver);
    assert_eq!(
        String::from_utf8(json).expect("text"),
        r#"{"sensor":"s1","celsius":21}"#
    );
    assert_eq!(value("labels", &mut driver), b"k:1");
    let count = driver
        .kv_store::<String, u64>("counts")
        .expect("store")
        .get(&"k".into())
        .expect("get");
    assert_eq!(count, Some(1));
}

#[test]
fn named_operators_name_their_processors_stores_and_internal_topics() {
    let b = StreamBuilder::new();
    let left = b
        .stream::<String, i64>("left")
        .select_key(|_, v| v.to_string());
    let right = b.stream::<String, i64>("right");
    left.named("pairs")
        .join(
            &right,
            JoinWindows::of(std::time::Duration::from_secs(1)),
            |_, l, r| l + r,
        )
        .named("only-big")
        .filter(|_, v| *v > 10)
        .to("out");
    let topology = b.build().expect("topology");
    let text = topology.describe();
    for part in [
        "Processor: pairs",
        "pairs-left-store",
        "pairs-right-store",
        "Processor: only-big",
    ] {
        assert!(text.contains(part), "{part} in\n{text}");
    }
    assert!(
        topology
            .internal_topics()
            .contains("pairs-left-repartition"),
        "{:?}",
        topology.internal_topics()
    );
    // An app prefixes the internal topic with its id; the names stay the user's.
    let owned = topology.for_application("app").expect("renamed");
    assert!(
        owned
            .internal_topics()
            .contains("app-pairs-left-repartition")
    );
}

#[test]
fn a_name_goes_to_the_next_operator_on_its_stream_and_no_other() {
    let b = StreamBuilder::new();
    let a = b.stream::<String, i64>("a");
    let other = b.stream::<String, i64>("other");
    // Named, then left unused: no operator of another stream, nor of `a` itself, takes it.
    let _unused = a.named("never-used");
    other.filter(|_, v| *v > 0).to("other-out");
    a.map_values(|v| v + 1).to("a-out");
    // Named, then two operators on the named stream: the first takes the name, the second
    // gets a generated one (no duplicate node).
    let named = a.named("first-only");
    named.filter(|_, v| *v > 1).to("f-out");
    named.filter(|_, v| *v > 2).to("g-out");
    let topology = b.build().expect("topology");
    let text = topology.describe();
    assert!(!text.contains("never-used"), "{text}");
    assert_eq!(text.matches("Processor: first-only").count(), 1, "{text}");
}
