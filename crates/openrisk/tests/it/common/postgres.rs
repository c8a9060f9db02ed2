//! A PostgreSQL server of a test's own, made with `initdb` on a free port: to restart, kill or
//! stall without touching the machine's server.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::free_port;

pub struct PostgresServer {
    pub port: u16,
    dir: tempfile::TempDir,
    /// The user the server runs as: PostgreSQL refuses to run as root.
    uid: u32,
    gid: u32,
    postmaster: Option<Child>,
}

impl PostgresServer {
    /// A new cluster, started.
    pub fn start() -> PostgresServer {
        let (uid, gid) = server_user();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let initdb = Command::new("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-sync", "--pgdata"])
            .arg(dir.path().join("data"))
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = PostgresServer {
            port: free_port(),
            dir,
            uid,
            gid,
            postmaster: None,
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the postmaster and returns once it accepts connections. Right after a `kill -9`,
    /// the old server's backends may still hold its shared memory for a moment: start again then.
    pub fn launch(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let mut child = Command::new("postgres")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.dir.path().display()))
                .args(["-c", "max_connections=40", "-c", "shared_buffers=16MB"])
                .uid(self.uid)
                .gid(self.gid)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("postgres runs");
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // refused to start: try again
                }
                if self.accepts_connections() {
                    self.postmaster = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the test's PostgreSQL did not start");
    }

    /// Whether a new connection would be accepted now.
    pub fn accepts_connections(&self) -> bool {
        Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, the server shuts down cleanly.
    pub fn stop_fast(&mut self) {
        if let Some(mut postmaster) = self.postmaster.take() {
            signal(postmaster.id(), "INT");
            let _ = postmaster.wait();
        }
    }

    /// `kill -9` of the postmaster: no shutdown at all; its backends are left orphaned.
    pub fn kill(&mut self) {
        if let Some(mut postmaster) = self.postmaster.take() {
            let _ = postmaster.kill();
            let _ = postmaster.wait();
        }
    }

    /// Freezes the postmaster and every backend (`SIGSTOP`) or lets them go on (`SIGCONT`).
    pub fn freeze(&self, frozen: bool) {
        let Some(postmaster) = &self.postmaster else {
            return;
        };
        let mut pids = vec![postmaster.id()];
        pids.extend(children_of(postmaster.id()));
        for pid in pids {
            signal(pid, if frozen { "STOP" } else { "CONT" });
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.freeze(false);
        self.stop_fast();
    }
}

/// Root may not run PostgreSQL: then the `postgres` user does.
fn server_user() -> (u32, u32) {
    let me = std::fs::metadata("/proc/self").unwrap();
    if me.uid() != 0 {
        return (me.uid(), me.gid());
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user")
    };
    (id("-u"), id("-g"))
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid …`: comm may hold spaces, so read after its ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}
