//! Letta's own clients, unmodified, holding end users' tokens (issue 21)
//! instead of the client token: two real runtimes online, two agents on
//! each; Alice's token grants the conversation of one agent on the first,
//! Bob's one on the second; the other agent's conversation on each runtime
//! is nobody's (the client token drives it). `letta-client`,
//! `letta computers list` and `AppServerClient` (on `/app-server/ws` and on
//! the relay socket) see only the runtime and the conversation of their
//! grants and are refused elsewhere, each the way its client surfaces it.
//! The tokens are HS256 JWTs minted here, as an app's backend mints them;
//! the scenarios are in `tests/clients/users.mjs`.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::clients::runtime_received;
use crate::harness::{Live, OtherRuntime, greeting};
use crate::node::{self, Steps};

/// The HS256 secret the bridge verifies user tokens with.
const SECRET: &str = "live-user-token-secret-000000000000001";

/// One end user: their token, the runtime (device id) and conversation it grants.
struct User {
    token: String,
    device: String,
    scope: Value,
}

impl User {
    /// `name`'s user token: every action on `scope` on `device`, for ten minutes.
    fn new(name: &str, device: &str, scope: &Value) -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let grant =
            json!({"runtime": device, "agent_id": scope["agent_id"], "conversation_id": scope["conversation_id"]});
        let claims = json!({"sub": name, "aud": "letta-bridge", "exp": now + 600, "jti": format!("{name}-1"),
            "authorization_details": [{"type": "letta-bridge",
                "actions": ["read", "input", "approve", "abort", "sync"], "scopes": [grant]}]});
        let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes()));
        Self { token: token.unwrap(), device: device.to_owned(), scope: scope.clone() }
    }

    /// As a scenario takes it.
    fn args(&self, name: &str) -> Value {
        json!({"name": name, "token": self.token, "device": self.device, "scope": self.scope})
    }
}

/// Two runtimes, four conversations, two users. Fields drop in order:
/// the second runtime stops before the bridge.
struct TwoUsers {
    bobs_runtime: OtherRuntime,
    live: Live,
    alice: User,
    bob: User,
    /// The conversation of the other agent on Alice's runtime: nobody's.
    beside_alice: Value,
    /// The conversation of the other agent on Bob's runtime: nobody's.
    beside_bob: Value,
}

impl TwoUsers {
    async fn start(test: &str) -> Option<Self> {
        if !node::packages_or_skip(test) {
            return None;
        }
        let mut live = Live::start_with_users(test, SECRET).await?;
        let bobs_runtime = live.start_another_runtime("live-test-bob").await;
        // Two agents on each runtime, one after the other; both runtimes at once.
        let two_agents = |runtime: &str| {
            let runtime = runtime.to_owned();
            let live = &live;
            async move {
                let first = live.create_agent_at(&runtime, "lmstudio/fake-model").await;
                (first, live.create_agent_at(&runtime, "lmstudio/fake-model").await)
            }
        };
        let ((hers, beside_alice), (his, beside_bob)) =
            tokio::join!(two_agents(&live.runtime_id), two_agents(&bobs_runtime.id));
        let alice = User::new("alice", &live.runtime_id, &hers);
        let bob = User::new("bob", &bobs_runtime.id, &his);
        Some(Self { bobs_runtime, live, alice, bob, beside_alice, beside_bob })
    }

    /// Runs `scenario` with `alice`, `bob` and `other` (a conversation nobody's) as arguments.
    async fn run(&self, scenario: &str, other: &Value) -> Steps {
        let args = json!({"alice": self.alice.args("alice"), "bob": self.bob.args("bob"), "other": other});
        node::run(&self.live, scenario, &args).await
    }
}

/// The device ids of a `letta-client` environment list.
fn devices(list: &Value) -> Vec<&str> {
    list["connections"].as_array().unwrap().iter().map(|c| c["deviceId"].as_str().unwrap()).collect()
}

/// The step `name` of `user`.
fn of<'a>(steps: &'a Steps, name: &str, user: &str) -> &'a Value {
    let found: Vec<&Value> = steps.all(name).into_iter().filter(|s| s["user"] == user).collect();
    assert_eq!(found.len(), 1, "one step {name} of {user}: {:?}", steps.0);
    found[0]
}

/// `AppServerClient.connect()` threw what the `ws` package says of a `404` upgrade.
fn refused_with_404(outcome: &Value) {
    assert_eq!(outcome["ok"], false, "{outcome}");
    let error = outcome["error"].as_str().unwrap_or_default();
    assert!(error.contains("Unexpected server response: 404"), "{outcome}");
}

#[tokio::test]
async fn letta_client_and_letta_computers_list_with_a_user_token_see_only_the_runtime_of_its_grant() {
    let Some(two) = TwoUsers::start("user_environments").await else { return };
    let (alice, bob) = (&two.alice, &two.bob);
    let users = json!([alice.args("alice"), bob.args("bob")]);
    let foreign = json!({"alice": two.beside_alice, "bob": two.beside_bob});
    let steps = node::run(&two.live, "user_environments", &json!({"users": users, "foreign": foreign})).await;

    for (name, user) in [("alice", alice), ("bob", bob)] {
        for list in ["list", "list_online"] {
            assert_eq!(devices(of(&steps, list, name)), [user.device.as_str()], "{name}'s {list}");
        }
        let own = of(&steps, "retrieve_own", name);
        assert_eq!((own["ok"].as_bool(), own["value"]["deviceId"].as_str()), (Some(true), Some(&*user.device)));
        let retrieved = of(&steps, "retrieve_other", name);
        assert_eq!((retrieved["ok"].as_bool(), retrieved["status"].as_u64()), (Some(false), Some(404)), "{retrieved}");
        let sent = of(&steps, "send_other_runtime", name);
        assert_eq!((sent["ok"].as_bool(), sent["status"].as_u64()), (Some(false), Some(404)), "{sent}");
        let foreign = of(&steps, "send_foreign_conversation", name);
        assert_eq!((foreign["ok"].as_bool(), foreign["status"].as_u64()), (Some(false), Some(403)), "{foreign}");
        assert_eq!(foreign["error"]["missing"]["action"], "input", "{foreign}");
        assert_eq!(foreign["error"]["missing"]["runtime"], user.device.as_str(), "{foreign}");

        let out = node::letta_cli(&two.live, &user.token, &["computers", "list"]).await;
        let listed: Value = serde_json::from_str(&out[out.find('{').expect("JSON output")..]).unwrap();
        assert_eq!(devices(&listed), [user.device.as_str()], "{name}'s `letta computers list`");
    }
    // Nothing of it reached a runtime: every refusal came from the bridge.
    for runtime in [&two.live.runtime, &two.bobs_runtime.runtime] {
        let inputs: Vec<Value> = runtime_received(runtime).into_iter().filter(|f| f["type"] == "input").collect();
        assert!(inputs.is_empty(), "{inputs:?}");
    }
}

#[tokio::test]
async fn app_server_client_with_a_user_token_gets_and_drives_only_its_granted_conversation() {
    let Some(two) = TwoUsers::start("user_app_server").await else { return };
    let steps = two.run("user_app_server", &two.beside_alice).await;
    let (alice, other) = (&two.alice, &two.beside_alice);

    // Unnamed with two runtimes online: refused, naming only her runtime.
    let unnamed = steps.get("unnamed");
    let candidates = &unnamed["frames"][0]["candidates"];
    assert_eq!((candidates, unnamed["closed"]["code"].as_u64()), (&json!([alice.device]), Some(1008)), "{unnamed}");
    // Bob's runtime does not exist for her, on either socket.
    refused_with_404(steps.get("app_server_other_runtime"));
    refused_with_404(steps.get("relay_other_runtime"));

    // On her runtime (`info()` resolved: the client takes only a successful
    // `app_server_info_response`), her conversation resumed.
    let info = steps.get("info");
    let resume = steps.get("resume");
    assert_eq!((resume["success"].as_bool(), &resume["runtime"]), (Some(true), &alice.scope), "{resume}");
    // Every command for the other conversation refused, in the reply her client waits for.
    let refused = steps.get("refused")["replies"].as_array().unwrap();
    for reply in refused {
        assert_eq!(reply["success"].as_bool().or(reply["accepted"].as_bool()), Some(false), "{reply}");
    }
    let conversation = other["conversation_id"].as_str().unwrap();
    for reply in &refused[..4] {
        assert!(reply["error"].as_str().is_some_and(|e| e.contains(conversation)), "names the scope: {reply}");
    }
    let list = &refused[4];
    assert!(list["error"].as_str().is_some_and(|e| e.contains("not open to user tokens")), "{list}");
    let received = runtime_received(&two.live.runtime);
    let leaked: Vec<&Value> =
        received.iter().filter(|f| f["request_id"].as_str().is_some_and(|id| id.contains("alice-refused-"))).collect();
    assert!(leaked.is_empty(), "refused at the bridge: {leaked:?}");

    // Both turns ran, and only those two; hers streamed to her.
    for turn in ["other_turn", "alice_turn"] {
        let turn = steps.get(turn);
        let (accepted, stop) = (turn["accepted"]["accepted"].as_bool(), turn["finished"]["stop_reason"].as_str());
        assert_eq!((accepted, stop, &turn["text"]), (Some(true), Some("end_turn"), &json!(greeting().text())));
    }
    assert_eq!(two.live.model.chat_requests().len(), 2, "two turns, two model calls");
    // Her socket carried her conversation's events and her replies, nothing else.
    let her_ids: Vec<&Value> = refused.iter().chain([info, resume]).map(|r| &r["request_id"]).collect();
    for frame in steps.get("alice_seen")["frames"].as_array().unwrap() {
        let hers = frame["runtime"] == alice.scope || her_ids.contains(&&frame["request_id"]);
        assert!(hers, "only her conversation: {frame}");
    }
}

#[tokio::test]
async fn a_relay_socket_with_a_user_token_streams_its_users_turn_and_opens_on_no_other_runtime() {
    let Some(two) = TwoUsers::start("user_relay").await else { return };
    let steps = two.run("user_relay", &two.beside_bob).await;
    let bob = &two.bob;

    let other = steps.get("other_turn");
    assert_eq!(other["finished"]["stop_reason"], "end_turn", "the client token's turn beside his: {other}");
    let sent = steps.get("sent");
    assert_eq!((sent["ok"].as_bool(), sent["value"]["success"].as_bool()), (Some(true), Some(true)), "{sent}");
    let turn = steps.get("bob_turn");
    assert_eq!(
        (turn["finished"]["stop_reason"].as_str(), &turn["text"]),
        (Some("end_turn"), &json!(greeting().text()))
    );
    let sync = steps.get("sync");
    assert_eq!((sync["success"].as_bool(), &sync["runtime"]), (Some(true), &bob.scope), "{sync}");
    let refused = steps.get("refused");
    assert_eq!(refused["accepted"], false, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("`input` action")), "{refused}");
    let received = runtime_received(&two.bobs_runtime.runtime);
    let leaked: Vec<&Value> = received
        .iter()
        .filter(|f| f["request_id"].as_str().is_some_and(|id| id.ends_with(":bob-refused-input")))
        .collect();
    assert!(leaked.is_empty(), "refused at the bridge: {leaked:?}");
    for outcome in steps.get("other_runtime")["outcomes"].as_array().unwrap() {
        refused_with_404(outcome);
    }
    // His socket carried his conversation's events and his replies, nothing else.
    for frame in steps.get("bob_seen")["frames"].as_array().unwrap() {
        let his = frame["runtime"] == bob.scope
            || ["bob-sync", "bob-refused-input"].contains(&frame["request_id"].as_str().unwrap_or(""));
        assert!(his, "only his conversation: {frame}");
    }
}
