//! The README's "Your first reply" run as written: every `curl` of that
//! section (its code blocks and inline commands) is parsed as the shell
//! would, its `$B`, `$CL`, `$AD` set to a bridge on port 0 and its tokens,
//! and sent, against the kit's fake runtime answering with the recorded
//! real one. The agent id a step shows is replaced by the one the earlier
//! step returned, as a reader would.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("## Your first reply").nth(1).expect("the README has a 'Your first reply' section");
    after.split("\n## ").next().unwrap().to_owned()
}

/// The `curl` commands of `text`, in order: lines of ```sh blocks (joined
/// across `\` line ends and open quotes, `#` comment lines dropped) and
/// inline code spans that start with `curl `.
fn curl_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line.starts_with("```sh");
            continue;
        }
        if in_block {
            if pending.is_empty() && line.trim_start().starts_with('#') {
                continue;
            }
            pending.push_str(line.strip_suffix('\\').unwrap_or(line));
            pending.push(if line.ends_with('\\') { ' ' } else { '\n' });
            if !line.ends_with('\\') && pending.matches('\'').count().is_multiple_of(2) {
                let command = std::mem::take(&mut pending);
                if command.trim_start().starts_with("curl ") {
                    commands.push(command.trim().to_owned());
                }
            }
        } else {
            for span in line.split('`').skip(1).step_by(2) {
                if span.starts_with("curl ") {
                    commands.push(span.to_owned());
                }
            }
        }
    }
    commands
}

/// Shell words of `command`: single quotes literal, double quotes and bare
/// words with `$NAME` expanded from `vars`.
fn words(command: &str, vars: &HashMap<&str, String>) -> Vec<String> {
    let (mut out, mut word, mut started) = (Vec::new(), String::new(), false);
    let mut chars = command.chars().peekable();
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, word: &mut String| {
        let mut name = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            name.push(c);
            chars.next();
        }
        word.push_str(vars.get(name.as_str()).unwrap_or_else(|| panic!("the README uses ${name}, unknown here")));
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                started = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '$' => expand(&mut chars, &mut word),
                        c => word.push(c),
                    }
                }
            }
            '$' => {
                started = true;
                expand(&mut chars, &mut word);
            }
            c if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// What a `curl` command asks for.
struct Curl {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    stream: bool,
}

fn parse(words: &[String]) -> Curl {
    let mut curl = Curl { method: "GET".into(), url: String::new(), headers: Vec::new(), body: None, stream: false };
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-s" => {}
            "-N" => curl.stream = true,
            "-X" => {
                i += 1;
                curl.method = words[i].clone();
            }
            "-H" => {
                i += 1;
                let (name, value) = words[i].split_once(':').expect("a header is `Name: value`");
                curl.headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" => {
                i += 1;
                curl.body = Some(words[i].clone());
            }
            other if other.starts_with("http") => curl.url = other.to_owned(),
            other => panic!("the README's curl uses {other:?}, which this test does not know"),
        }
        i += 1;
    }
    assert!(!curl.url.is_empty(), "a curl without a URL: {words:?}");
    curl
}

#[tokio::test]
async fn the_readmes_first_reply_runs_as_written_against_the_recorded_runtime() {
    let app = spawn_app().await;
    let rt = app.runtime("df27ae0a").await;
    rt.play_recorded_turns();
    let vars = HashMap::from([
        ("B", format!("http://{}", app.addr)),
        ("CL", CLIENT_TOKEN.to_owned()),
        ("AD", ADMIN_TOKEN.to_owned()),
        ("RT", RUNTIME_TOKEN.to_owned()),
    ]);
    let commands = curl_commands(&section());
    assert!(commands.len() >= 4, "the section lost its commands: {commands:#?}");
    let mut agent: Option<String> = None;
    let mut answers = Vec::new();
    for command in &commands {
        let mut command = command.clone();
        if let Some(agent) = &agent {
            command = command.replace("agent-local-77de…", agent);
        }
        let curl = parse(&words(&command, &vars));
        let mut req = app.http.request(curl.method.parse().unwrap(), &curl.url);
        for (name, value) in &curl.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &curl.body {
            req = req.body(body.clone());
        }
        let mut res = req.send().await.unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(res.status().is_success(), "{command}\n→ {} {}", res.status(), res.text().await.unwrap_or_default());
        if curl.stream {
            let first = tokio::time::timeout(WAIT, res.chunk()).await.expect("the stream answers").unwrap();
            assert!(first.is_some(), "{command}: the stream ended at once");
            continue;
        }
        let answer: Value = tokio::time::timeout(Duration::from_secs(10), res.json()).await.unwrap().unwrap();
        if answer["type"] == "runtime_start_response" {
            agent = answer["runtime"]["agent_id"].as_str().map(str::to_owned);
        }
        answers.push(answer);
    }
    let started = answers.iter().find(|a| a["type"] == "runtime_start_response").expect("step 3 creates an agent");
    assert_eq!(started["success"], true, "{started}");
    let turn = answers.iter().find(|a| a.get("stop_reason").is_some()).expect("step 4 waits for the turn");
    assert_eq!(turn["stop_reason"], "end_turn", "{turn}");
    assert!(turn["text"].as_str().is_some_and(|t| !t.is_empty()), "the first reply has text: {turn}");
}

#[test]
fn the_readme_parser_reads_quotes_continuations_and_variables_as_the_shell_does() {
    let vars = HashMap::from([("B", "http://h".to_owned()), ("CL", "tok".to_owned())]);
    let cmd = "curl -s -X POST \"$B/input?x=1\" -H \"Authorization: Bearer $CL\" -d '{\"a\": \"$B\"}'";
    let w = words(cmd, &vars);
    let want =
        ["curl", "-s", "-X", "POST", "http://h/input?x=1", "-H", "Authorization: Bearer tok", "-d", r#"{"a": "$B"}"#];
    assert_eq!(w, want);
    let text = "```sh\ncurl -s $B/a \\\n  -d '{\"x\":\n 1}'\n# comment\n```\nsee `curl -s $B/b` too";
    let commands = curl_commands(text);
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(words(&commands[0], &vars).last().unwrap(), "{\"x\":\n 1}");
}
