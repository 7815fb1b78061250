//! querygate as a child process, for the tests that need a real restart or two
//! separate instances.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running `querygate` binary; killed on drop.
pub struct ServerProcess {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    pub base_url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary with a clean environment plus `env`, on a free port, and
    /// waits until it logs its address.
    pub fn start(sqlite_dir: &Path, keys_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_limited(sqlite_dir, keys_dir, env, None)
    }

    /// As [`ServerProcess::start`], with the process's open-file limit (soft and
    /// hard) set to `file_limit` when given.
    pub fn start_limited(
        sqlite_dir: &Path,
        keys_dir: &Path,
        env: &[(&str, &str)],
        file_limit: Option<u32>,
    ) -> Self {
        super::ensure_databases();
        let binary = env!("CARGO_BIN_EXE_querygate");
        let mut command = match file_limit {
            Some(limit) => {
                let mut shell = Command::new("bash");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\""))
                    .arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        command
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("SQLITE_DIR", sqlite_dir)
            .env("QUERYGATE_KEYS_DIR", keys_dir)
            .env("LOG_FORMAT", "json")
            .env("RATE_LIMIT_MAX_REQUESTS", "0")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn querygate");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = address_tx.send(address);
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let address = address_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("querygate did not start: {:?}", logs.lock().expect("logs"))
            });
        Self {
            child,
            reader: Some(reader),
            base_url: format!("http://{address}"),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Connects with `body` and returns the token, failing the test on any error.
    pub async fn token_for(&self, body: &serde_json::Value) -> String {
        let response = reqwest::Client::new()
            .post(self.url("/api/database/connect"))
            .json(body)
            .send()
            .await
            .expect("connect");
        let (status, json) = crate::common::read(response).await;
        assert_eq!(status, 200, "{json}");
        json["token"].as_str().expect("token").to_owned()
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.memory("VmHWM:")
    }

    /// A size from `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect(field)
    }

    /// Starts a new peak (`VmHWM` back to the current size, through
    /// `/proc/PID/clear_refs`) and returns the current resident size, in bytes.
    pub fn reset_peak_memory(&self) -> u64 {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").expect("clear_refs");
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("VmRSS")
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<i32> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Everything the process has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Stops the process and returns every line it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
