//! Debian's nginx as a load balancer in front of several bridges, started
//! from the repository's own config (`deploy/nginx/letta-bridge.conf`, the
//! file the README's "Run several instances" recipe runs) with only its
//! ports changed and its prefix given on the command line: the recipe is
//! what is tested.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::Guarded;

/// The one address the repository's config listens on.
pub const LISTEN: &str = "127.0.0.1:8284";

/// The upstream servers the repository's config balances over, in order.
pub const UPSTREAMS: [&str; 3] = ["127.0.0.1:8285", "127.0.0.1:8286", "127.0.0.1:8287"];

/// Directives whose paths must be relative (to the prefix `-p`), so that the
/// file runs as a normal user from any checkout.
const PATH_DIRECTIVES: [&str; 8] = [
    "pid",
    "error_log",
    "access_log",
    "client_body_temp_path",
    "proxy_temp_path",
    "fastcgi_temp_path",
    "uwsgi_temp_path",
    "scgi_temp_path",
];

/// A running nginx.
pub struct Nginx {
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
    _process: Guarded,
}

impl Nginx {
    /// The program: `$NGINX`, else `nginx` in the PATH or /usr/sbin.
    pub fn program() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("NGINX").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = path.to_str().unwrap_or("").split(':').map(PathBuf::from).chain([PathBuf::from("/usr/sbin")]);
        dirs.map(|d| d.join("nginx")).find(|p| p.is_file())
    }

    /// What the command line needs beyond the recipe's: as root, nginx would
    /// run its workers as an unprivileged user that cannot reach a temp
    /// folder under root's home, so they stay root (`-g 'user root;'`).
    pub fn root_args() -> &'static [&'static str] {
        if is_root() { &["-g", "user root;"] } else { &[] }
    }

    /// The repository's `config` text listening on `port` and balancing over
    /// `upstreams`, nothing else changed. Panics, saying what it expected,
    /// when the file no longer has the shape the recipe and this kit rely on
    /// (it runs in the foreground, one `listen` of [`LISTEN`], one `upstream`
    /// of the [`UPSTREAMS`], every path relative to the prefix).
    pub fn configure(config: &str, port: u16, upstreams: &[SocketAddr]) -> String {
        let directives: Vec<&str> =
            config.lines().map(|l| l.split('#').next().unwrap().trim()).filter(|l| !l.is_empty()).collect();
        assert!(
            directives.contains(&"daemon off;"),
            "the nginx config must keep `daemon off;` (it runs in the foreground)"
        );
        assert!(directives.iter().any(|d| d.starts_with("events")), "the nginx config lost its `events` block");
        for d in &directives {
            let mut words = d.split_whitespace();
            let (Some(name), Some(path)) = (words.next(), words.next()) else { continue };
            assert!(
                !PATH_DIRECTIVES.contains(&name) || !path.starts_with('/'),
                "`{d}`: paths in the nginx config must be relative to its prefix (-p), so that it needs no root"
            );
        }
        let listen = format!("listen {LISTEN};");
        let listens: Vec<&&str> = directives.iter().filter(|d| d.starts_with("listen ")).collect();
        assert_eq!(listens, [&listen.as_str()], "the nginx config must listen once, on {LISTEN}");
        // `server <address>[ <parameters>];`, the same parameters for each.
        let found: Vec<&str> =
            directives.iter().filter(|d| d.starts_with("server ") && d.ends_with(';')).copied().collect();
        let params = found.first().and_then(|d| d.strip_prefix(&format!("server {}", UPSTREAMS[0]))).unwrap_or(";");
        let servers: Vec<String> = UPSTREAMS.iter().map(|a| format!("server {a}{params}")).collect();
        assert_eq!(
            found, servers,
            "the nginx config's upstream must be the three instances {UPSTREAMS:?}, with the same parameters"
        );
        let mut out = String::with_capacity(config.len());
        for line in config.split_inclusive('\n') {
            let code = line.split('#').next().unwrap().trim();
            if code == listen {
                out.push_str(&line.replacen(LISTEN, &format!("127.0.0.1:{port}"), 1));
            } else if code == servers[0] {
                let indent = &line[..line.len() - line.trim_start().len()];
                for a in upstreams {
                    out.push_str(&format!("{indent}server {a}{params}\n"));
                }
            } else if !servers.iter().any(|s| code == s) {
                out.push_str(line);
            }
        }
        out
    }

    /// Starts nginx with prefix `dir` from the repository's `config_file`,
    /// listening on a free port and balancing over `upstreams`.
    pub fn start(config_file: &Path, dir: &Path, upstreams: &[SocketAddr]) -> Self {
        std::fs::create_dir_all(dir).expect("nginx folder");
        let port = free_port();
        let config = std::fs::read_to_string(config_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", config_file.display()));
        let conf_path = dir.join("letta-bridge.conf");
        std::fs::write(&conf_path, Self::configure(&config, port, upstreams)).expect("nginx config");
        let program = Self::program().expect("nginx is installed");
        let mut args = vec!["-p", dir.to_str().unwrap(), "-c", conf_path.to_str().unwrap(), "-e", "error.log"];
        args.extend_from_slice(Self::root_args());
        let mut cmd = Guarded::command(program, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let process = Guarded::spawn(cmd).expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Another process's readiness is not an event we can await: poll, bounded.
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen; see {}/error.log", dir.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { addr, dir: dir.to_owned(), _process: process }
    }

    /// Its error log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
