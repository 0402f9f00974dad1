//! The log codec against the script that writes the log.

use std::sync::Arc;

use redis::Value;

use super::{Append, EntryError, LogEntry, field};
use crate::hub::Draft;

fn append(kind: &str, reply_to: Option<&str>) -> Append {
    Append {
        runtime: Arc::from("dev-1"),
        generation: 42,
        draft: Draft {
            kind: kind.into(),
            runtime_id: Some(Arc::from("dev-1")),
            agent_id: Some("agent-1".into()),
            conversation_id: None,
            data: r#"{"type":"x"}"#.into(),
        },
        reply_to: reply_to.map(Into::into),
    }
}

fn fields(pairs: &[(&str, &str)]) -> Vec<Value> {
    pairs
        .iter()
        .flat_map(|(k, v)| [Value::BulkString(k.as_bytes().to_vec()), Value::BulkString(v.as_bytes().to_vec())])
        .collect()
}

#[test]
fn an_event_is_appended_as_nine_arguments_in_the_scripts_order() {
    let reply = append("sync_response", Some("r1"));
    let args: Vec<String> = reply.to_args("{}").iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["e", "dev-1", "42", "sync_response", "agent-1", "", "r1", r#"{"type":"x"}"#, ""]);
}

#[test]
fn status_events_say_what_they_do_to_the_registry_and_only_online_carries_the_registration() {
    let online = append("runtime_online", None);
    assert_eq!(online.op(), "on");
    assert_eq!(online.to_args(r#"{"os":"linux"}"#)[8], r#"{"os":"linux"}"#);
    let offline = append("runtime_offline", None);
    assert_eq!(offline.op(), "off");
    assert_eq!(offline.to_args(r#"{"os":"linux"}"#)[8], "");
}

#[test]
fn an_entry_reads_back_with_its_seq_stamp_and_event() {
    let map = fields(&[
        ("e", "ep1"),
        ("k", "stream_delta"),
        ("r", "dev-1"),
        ("a", "agent-1"),
        ("v", "conv-1"),
        ("g", "42"),
        ("n", "n-a"),
        ("q", "r1"),
        ("t", "1700000000000"),
        ("i", "n-a:7"),
        ("z", "12"), // written by earlier versions, read by none
        ("d", r#"{"type":"x"}"#),
    ]);
    let entry = LogEntry::from_fields("105-0", map).unwrap();
    assert_eq!((entry.seq, entry.epoch.as_str(), entry.node.as_str(), entry.generation), (105, "ep1", "n-a", 42));
    assert_eq!((entry.reply_to.as_deref(), entry.engine_ms), (Some("r1"), 1_700_000_000_000));
    assert_eq!(entry.append_number(), Some(7));
    assert_eq!(entry.draft.kind, "stream_delta");
    assert_eq!(entry.draft.runtime_id.as_deref(), Some("dev-1"));
    assert_eq!(
        (entry.draft.agent_id.as_deref(), entry.draft.conversation_id.as_deref()),
        (Some("agent-1"), Some("conv-1"))
    );
    assert_eq!(entry.draft.data, r#"{"type":"x"}"#);
}

#[test]
fn empty_optional_fields_read_as_absent() {
    let entry = LogEntry::from_fields("1-0", fields(&[("e", "ep1"), ("k", "x"), ("r", "dev-1"), ("a", ""), ("q", "")]))
        .unwrap();
    assert_eq!((entry.draft.agent_id, entry.reply_to, entry.generation), (None, None, 0));
}

#[test]
fn the_reapers_entries_have_no_append_number_of_the_lost_instance() {
    let map = fields(&[("e", "ep1"), ("k", "runtime_offline"), ("r", "dev-1"), ("n", "n-lost"), ("i", "n-b:reap")]);
    assert_eq!(LogEntry::from_fields("3-0", map).unwrap().append_number(), None);
}

#[test]
fn an_entry_that_is_not_the_logs_is_refused() {
    assert_eq!(LogEntry::from_fields("x-0", fields(&[])).unwrap_err(), EntryError::Id("x-0".into()));
    assert_eq!(LogEntry::from_fields("1-0", fields(&[("g", "many")])).unwrap_err(), EntryError::Number("g"));
}

#[test]
fn the_script_writes_exactly_the_fields_the_mirror_reads() {
    let script = include_str!("../log.lua");
    let add = &script[script.find("local function add(").expect("log.lua has `add`")..];
    let add = &add[..add.find("\nend\n").expect("`add` ends")];
    let written: Vec<&str> = add.split('\'').skip(1).step_by(2).filter(|s| s.len() == 1).collect();
    assert_eq!(written, field::ALL, "log.lua's fields and their order");
    assert!(add.contains("redis.call('XADD', EVENTS, seq .. '-0', unpack(f))"), "`add` appends what it built");
}

#[test]
fn the_script_takes_as_many_arguments_per_event_as_the_codec_gives() {
    let script = include_str!("../log.lua");
    assert!(script.contains(&format!("for i = 9, #ARGV, {} do", Append::ARGS)), "log.lua's append loop");
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn xread_entry(id: &str, pairs: &[(&str, &str)]) -> Value {
    Value::Array(vec![bulk(id), Value::Array(fields(pairs))])
}

#[test]
fn an_xread_reply_reads_as_its_entries_in_order_in_resp2_and_resp3() {
    let entries =
        || Value::Array(vec![xread_entry("7-0", &[("e", "ep1"), ("d", "{}")]), xread_entry("8-0", &[("e", "ep1")])]);
    let resp2 = Value::Array(vec![Value::Array(vec![bulk("lb:events"), entries()])]);
    let resp3 = Value::Map(vec![(bulk("lb:events"), entries())]);
    for reply in [resp2, resp3] {
        let read: Vec<LogEntry> = LogEntry::read(reply).into_iter().map(Result::unwrap).collect();
        assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(
            (read[0].epoch.as_str(), read[0].draft.data.as_str(), read[1].draft.data.as_str()),
            ("ep1", "{}", "")
        );
    }
    assert!(LogEntry::read(Value::Nil).is_empty(), "a block that timed out");
}

#[test]
fn an_entry_of_another_shape_in_a_reply_is_refused_in_its_place() {
    let reply = Value::Array(vec![Value::Array(vec![
        bulk("lb:events"),
        Value::Array(vec![Value::Int(3), xread_entry("9-0", &[("e", "ep1")])]),
    ])]);
    let read = LogEntry::read(reply);
    assert_eq!(read.len(), 2);
    assert!(read[0].is_err());
    assert_eq!(read[1].as_ref().map(|e| e.seq), Ok(9));
}
