//! Debian's nginx as a load balancer in front of several bridges, run with
//! the configuration the README recommends (its "Run several instances"
//! recipe, read from README.md, with this test's ports put in): the recipe
//! is what is tested.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::Guarded;

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

    /// The README's nginx block (after `## Run several instances`).
    pub fn recipe(readme: &Path) -> String {
        let text = std::fs::read_to_string(readme).expect("README.md");
        let section =
            text.split("## Run several instances").nth(1).expect("the README has the several-instances section");
        let block = section.split("```nginx\n").nth(1).expect("the section has an nginx block");
        block.split("```").next().unwrap().to_owned()
    }

    /// Starts nginx in `dir` with the README's recipe balancing over `upstreams`.
    pub fn start(readme: &Path, dir: &Path, upstreams: &[SocketAddr]) -> Self {
        std::fs::create_dir_all(dir).expect("nginx folder");
        let port = free_port();
        let servers: String = upstreams.iter().map(|a| format!("server {a}; ")).collect();
        let recipe = Self::recipe(readme);
        let upstream_line =
            recipe.lines().find(|l| l.trim_start().starts_with("upstream letta_bridge")).expect("an upstream");
        let recipe = recipe
            .replace(upstream_line, &format!("upstream letta_bridge {{ {servers}}}"))
            .replace("listen 127.0.0.1:8284;", &format!("listen 127.0.0.1:{port};"));
        let d = dir.display();
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{recipe}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let program = Self::program().expect("nginx is installed");
        let args = ["-p", dir.to_str().unwrap(), "-c", conf_path.to_str().unwrap(), "-e", &format!("{d}/error.log")];
        let mut cmd = Guarded::command(program, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let process = Guarded::spawn(cmd).expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Another process's readiness is not an event we can await: poll, bounded.
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen; see {d}/error.log");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { addr, dir: dir.to_owned(), _process: process }
    }

    /// Its error log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
