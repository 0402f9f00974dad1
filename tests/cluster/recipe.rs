//! The README's "Run several instances" recipe run as a user runs it: its
//! shell block, word for word but for its ports and the binary's path, in a
//! folder standing for the checkout, with the repository's nginx config (its
//! ports changed the same way). Tokens made by the recipe, requests through
//! its nginx: every instance answers, none says 401.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use letta_bridge_testkit::bridge::without_bridge_env;
use letta_bridge_testkit::nginx::{LISTEN, Nginx, UPSTREAMS, free_port};
use letta_bridge_testkit::process::Guarded;
use letta_bridge_testkit::redis::RedisServer;
use serde_json::Value;

use crate::harness::{TempDir, nginx_config, repo, skip};

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// How long the recipe may take to have Redis, three instances and nginx up.
const START: Duration = Duration::from_secs(30);

/// Where the test's epilogue leaves the client and admin tokens the recipe made.
const TOKENS_FILE: &str = "recipe-tokens";

/// The README's several-instances shell block.
fn readme_recipe() -> String {
    first_shell_block("README.md", "## Run several instances")
}

/// The first shell block of `file`'s section `heading`.
fn first_shell_block(file: &str, heading: &str) -> String {
    let text = std::fs::read_to_string(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let section = text.split(heading).nth(1).unwrap_or_else(|| panic!("{file} has no section {heading:?}"));
    let section = section.split("\n## ").next().unwrap();
    let block = section.split("```sh\n").nth(1).unwrap_or_else(|| panic!("{file}'s {heading:?} has no shell block"));
    block.split("```").next().unwrap().to_owned()
}

/// `text` with each `from` replaced by its `to` in one pass (a port put in
/// is never replaced again); panics when a `from` is not in `text`.
fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    for (from, _) in pairs {
        assert!(text.contains(from), "the README's recipe no longer has {from:?}:\n{text}");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in pairs {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// True when `program` is in the PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// The folder holding `program`, for the recipe's PATH.
fn folder_of(program: PathBuf) -> PathBuf {
    program.parent().expect("a program in a folder").to_owned()
}

/// Polls until `ready` (another process's readiness is no event we can await), bounded.
fn wait_until(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START;
    while !ready() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(Instant::now() < deadline, "{what} within {START:?}; the recipe's output:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_readme_recipe_runs_as_written_and_every_instance_answers_through_its_nginx() {
    let test = "recipe";
    let (Some(redis), Some(nginx)) = (RedisServer::program(), Nginx::program()) else {
        return skip(test, "redis-server or nginx");
    };
    // The recipe's other programs: Debian's redis-tools (a dependency of
    // redis-server) and openssl.
    if let Some(missing) = ["bash", "redis-cli", "openssl"].into_iter().find(|p| !on_path(p)) {
        return skip(test, missing);
    }
    let dir = TempDir::new(test);
    let checkout = &dir.path;
    let (redis_port, balancer) = (free_port(), free_port());
    let instances: Vec<u16> = UPSTREAMS.iter().map(|_| free_port()).collect();

    // The repository's nginx config, ports changed, where the recipe reads it.
    let upstreams: Vec<SocketAddr> = instances.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let config = std::fs::read_to_string(nginx_config()).unwrap();
    std::fs::create_dir_all(checkout.join("deploy/nginx")).unwrap();
    std::fs::write(checkout.join("deploy/nginx/letta-bridge.conf"), Nginx::configure(&config, balancer, &upstreams))
        .unwrap();

    // The README's commands with this test's ports and binary; as root,
    // nginx keeps its workers root (see `Nginx::root_args`).
    let nginx_args: String = Nginx::root_args().iter().map(|a| format!("'{a}' ")).collect();
    let mut pairs = vec![
        ("./target/release/letta-bridge", BIN.to_owned()),
        ("6379", redis_port.to_string()),
        (LISTEN.rsplit(':').next().unwrap(), balancer.to_string()),
        ("nginx -p", format!("nginx {nginx_args}-p")),
    ];
    for (upstream, port) in UPSTREAMS.iter().zip(&instances) {
        pairs.push((upstream.rsplit(':').next().unwrap(), port.to_string()));
    }
    let recipe = substitute(&readme_recipe(), &pairs);
    // Around it: stop every job on SIGTERM; after it, tell the test the tokens.
    let script = format!(
        "trap 'kill $(jobs -p) 2> /dev/null; wait; exit 0' TERM\n{recipe}\n\
         echo \"$LETTA_BRIDGE_CLIENT_TOKEN $LETTA_BRIDGE_ADMIN_TOKEN\" > {TOKENS_FILE}.part && mv {TOKENS_FILE}.part {TOKENS_FILE}\nwait\n"
    );
    let output = checkout.join("recipe.out");
    let log = std::fs::File::create(&output).unwrap();
    let path = std::env::join_paths(
        [folder_of(redis), folder_of(nginx)]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut cmd = Guarded::command("bash", &["-c", &script]);
    without_bridge_env(&mut cmd)
        .current_dir(checkout)
        .env("PATH", path)
        .stdout(log.try_clone().unwrap())
        .stderr(Stdio::from(log));
    let recipe = Guarded::spawn(cmd).expect("bash runs the recipe");

    let listening = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
    for port in instances.iter().chain([&balancer]) {
        wait_until(&format!("nothing listens on {port}"), &output, || listening(*port));
    }
    let tokens = checkout.join(TOKENS_FILE);
    wait_until("the recipe exported no tokens", &output, || tokens.exists());
    let tokens = std::fs::read_to_string(tokens).unwrap();
    let (client, admin) = tokens.trim().split_once(' ').expect("the client and admin tokens");
    assert_eq!((client.len(), admin.len()), (64, 64), "tokens of `openssl rand -hex 32`");

    // Round robin: three requests in a row reach the three instances, with
    // either token, and each accepts it.
    let http = reqwest::Client::builder().no_proxy().timeout(START).build().unwrap();
    let mut nodes = BTreeSet::new();
    for token in [client, admin] {
        for i in 0..UPSTREAMS.len() {
            let res = http.get(format!("http://127.0.0.1:{balancer}/status")).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200, "request {i} through nginx");
            let status: Value = res.json().await.unwrap();
            nodes.insert(status["cluster"]["node"].as_str().expect("a cluster instance").to_owned());
        }
    }
    assert_eq!(nodes.len(), UPSTREAMS.len(), "every instance answered: {nodes:?}");

    // Each instance printed the runtime's command line for the balancer, and no token.
    let expected = format!("LETTA_BASE_URL=http://127.0.0.1:{balancer} ");
    wait_until("the instances did not each print the runtime's command line", &output, || {
        std::fs::read_to_string(&output).unwrap().matches(&expected).count() == UPSTREAMS.len()
    });
    let printed = std::fs::read_to_string(&output).unwrap();
    assert!(
        !printed.contains(client) && !printed.contains("generated these tokens"),
        "nothing generated or printed:\n{printed}"
    );

    // Redis on loopback only, and its data and nginx's files in their folders.
    let mut redis = TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
    let bind = resp(&mut redis, "CONFIG GET bind");
    assert_eq!(bind, "*2\r\n$4\r\nbind\r\n$9\r\n127.0.0.1\r\n", "Redis binds loopback only");
    assert!(checkout.join(".nginx/nginx.pid").is_file(), "nginx keeps its pid in .nginx/");
    drop(recipe); // SIGTERM: every job stops, and Redis saves its snapshot.
    assert!(checkout.join(".redis/appendonlydir").is_dir() && checkout.join(".redis/dump.rdb").is_file());
    assert!(checkout.join(".nginx/error.log").is_file() && checkout.join(".nginx/access.log").is_file());
    let mut left: Vec<String> =
        std::fs::read_dir(checkout).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".nginx", ".redis", "deploy", TOKENS_FILE, "recipe.out"], "nothing else in the checkout");
}

/// One inline command's raw reply.
fn resp(stream: &mut TcpStream, command: &str) -> String {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_kit_starts_the_repository_nginx_config_with_only_its_ports_changed() {
    let config = std::fs::read_to_string(nginx_config()).unwrap();
    let upstreams: Vec<SocketAddr> =
        ["127.0.0.1:41001", "127.0.0.1:41002"].iter().map(|a| a.parse().unwrap()).collect();
    let changed = Nginx::configure(&config, 41000, &upstreams);
    let (before, after): (Vec<&str>, Vec<&str>) = diff(&config, &changed);
    assert_eq!(
        before,
        [
            "server 127.0.0.1:8285 max_fails=0;",
            "server 127.0.0.1:8286 max_fails=0;",
            "server 127.0.0.1:8287 max_fails=0;",
            "listen 127.0.0.1:8284;"
        ]
    );
    assert_eq!(
        after,
        ["server 127.0.0.1:41001 max_fails=0;", "server 127.0.0.1:41002 max_fails=0;", "listen 127.0.0.1:41000;"],
        "the servers keep their parameters"
    );
    let absolute = config.replace("pid nginx.pid;", "pid /run/nginx.pid;");
    let refused = std::panic::catch_unwind(|| Nginx::configure(&absolute, 41000, &upstreams));
    assert!(refused.is_err(), "a path that needs root is refused loudly");
}

/// The trimmed lines only in `a`, and those only in `b`.
fn diff<'a>(a: &'a str, b: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let lines = |t: &'a str| t.lines().map(|l| l.split('#').next().unwrap().trim()).collect::<Vec<_>>();
    let (a, b) = (lines(a), lines(b));
    (a.iter().filter(|l| !b.contains(l)).copied().collect(), b.iter().filter(|l| !a.contains(l)).copied().collect())
}

#[test]
fn docs_cluster_shows_the_readme_recipe_after_its_build() {
    let docs = first_shell_block("docs/cluster.md", "## The recipe");
    assert_eq!(docs, format!("cargo build --release\n{}", readme_recipe()), "docs/cluster.md and the README differ");
}
