//! Redis servers of a test's own: to kill, stop, restart, or to form a cluster.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test's own, with its data directory (for snapshots).
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    process: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With extra `redis-server` arguments (kept across restarts).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            process: None,
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server; it loads `dump.rdb` from its directory if a snapshot was saved.
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.process = Some(child);
        for _ in 0..100 {
            if self.cli(&["PING"]).is_some_and(|out| out.trim() == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }

    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A field of `INFO`, such as `evicted_keys`.
    pub fn info(&self, field: &str) -> String {
        let info = self.cli(&["INFO"]).unwrap_or_default();
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().unwrap().id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts empty, or with the last snapshot when `keep` is set.
    pub fn restart(&mut self, keep: bool) {
        self.kill();
        if !keep {
            let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        }
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.process {
            // A stopped server must be continued to die.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// A Redis Cluster of three masters, each a `redis-server` of its own.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(&[])
    }

    /// With extra `redis-server` arguments for every node.
    pub fn start_with(args: &[&str]) -> RedisCluster {
        let args: Vec<&str> = ["--cluster-enabled", "yes"].iter().chain(args).copied().collect();
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with(&args)).collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        for _ in 0..200 {
            let ready = nodes.iter().all(|n| {
                n.cli(&["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
            if ready {
                return RedisCluster { nodes };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the cluster did not become ready");
    }

    /// `redis+cluster://host:port,host:port,host:port`
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

/// What tests do to a Redis of their own, one server or a cluster alike.
pub trait TestRedis {
    fn url(&self) -> String;
    /// Deletes the keys that match `pattern`, as an eviction would; returns how many.
    fn delete_matching(&self, pattern: &str) -> usize;
    /// `CONFIG SET name value`, on every node.
    fn configure(&self, name: &str, value: &str);
    fn evicted_keys(&self) -> u64;
}

impl TestRedis for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }

    fn delete_matching(&self, pattern: &str) -> usize {
        let keys = self.cli(&["--scan", "--pattern", pattern]).unwrap_or_default();
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        for key in &keys {
            self.cli(&["DEL", key]);
        }
        keys.len()
    }

    fn configure(&self, name: &str, value: &str) {
        let answer = self.cli(&["CONFIG", "SET", name, value]).unwrap_or_default();
        assert_eq!(answer.trim(), "OK", "CONFIG SET {name} {value}");
    }

    fn evicted_keys(&self) -> u64 {
        self.info("evicted_keys").parse().unwrap_or(0)
    }
}

impl TestRedis for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }

    fn delete_matching(&self, pattern: &str) -> usize {
        self.nodes.iter().map(|node| node.delete_matching(pattern)).sum()
    }

    fn configure(&self, name: &str, value: &str) {
        for node in &self.nodes {
            node.configure(name, value);
        }
    }

    fn evicted_keys(&self) -> u64 {
        self.nodes.iter().map(TestRedis::evicted_keys).sum()
    }
}

/// The machine's Redis (shared by every test): `TEST_REDIS_URL`, else the local default.
pub fn machine_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
