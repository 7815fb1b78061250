//! Test harness: a real querygate on a loopback port (in-process or as a child
//! process), one helper per endpoint, and the databases of this machine.
//!
//! Logs appear only when `TEST_LOG` is set.

pub mod dns;
pub mod fake_model;
pub mod fake_mysql;
pub mod fake_pg;
pub mod process;
pub mod proxy;

use std::net::SocketAddr;

use querygate::secret::Secret;
use querygate::{AppState, Config};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// Key versions used by the tests (32 bytes each, standard base64).
pub const KEY_A: &str = "ka:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const KEY_B: &str = "kb:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// The role that must authenticate (see `scripts/setup-test-dbs.sh`).
pub const SECRET_USER: &str = "qg_secret";
pub const SECRET_PASSWORD: &str = "qg-right-password";

/// A server started in this process on `127.0.0.1:0`.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: Client,
    pub state: AppState,
    _sqlite_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Makes sure PostgreSQL and MariaDB are up and hold the test roles, once per test
/// binary, by running the idempotent `scripts/setup-test-dbs.sh`.
pub fn ensure_databases() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = READY.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup-test-dbs.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .output()
            .map_err(|error| format!("cannot run {script}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{script} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("test databases are not ready: {message}");
    }
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        querygate::telemetry::init(querygate::config::LogFormat::Pretty);
    }
}

/// The configuration tests start from: test keys, a private SQLite folder, short
/// connect timeout, no rate limit.
pub fn test_config(sqlite_dir: &std::path::Path) -> Config {
    let mut config = Config::defaults();
    config.keys = Some(Secret::new(KEY_A));
    config.sqlite_dir = sqlite_dir.to_owned();
    config.db_connect_timeout_ms = 2_000;
    config.rate_limit_max_requests = 0;
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        init_logs();
        ensure_databases();
        let sqlite_dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(sqlite_dir.path());
        adjust(&mut config);
        let state = AppState::build(config).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            let _ = querygate::run(listener, served, async {
                let _ = stop.await;
            })
            .await;
        });
        Self {
            address,
            client: Client::new(),
            state,
            _sqlite_dir: sqlite_dir,
            shutdown: Some(shutdown),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn connect(&self, body: &Value) -> Response {
        self.post_json("/api/database/connect", body, None).await
    }

    /// Connects and returns the token, failing the test on any error.
    pub async fn token_for(&self, body: &Value) -> String {
        let response = self.connect(body).await;
        let status = response.status();
        let json: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "connect failed: {json}");
        json["token"].as_str().expect("token").to_owned()
    }

    pub async fn status(&self, token: Option<&str>, check: bool) -> Response {
        let path = if check {
            "/api/database/status?check=true"
        } else {
            "/api/database/status"
        };
        self.get(path, token).await
    }

    pub async fn refresh(&self, token: &str) -> Response {
        self.client
            .post(self.url("/api/database/refresh"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn disconnect(&self, token: &str) -> Response {
        self.client
            .post(self.url("/api/database/disconnect"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
}

/// Reads a response as `(status, json)`, checking the invariants every response
/// shares: a request id, and JSON.
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    assert!(
        response.headers().contains_key("x-request-id"),
        "response without x-request-id"
    );
    let text = response.text().await.expect("body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

/// Asserts the error envelope with `code` and `status`.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(status.as_u16(), expected_status, "body: {body}");
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
}

pub fn pg_body(database: &str) -> Value {
    json!({"dbType": "postgresql", "host": "127.0.0.1", "port": 5432,
           "username": "postgres", "password": "", "database": database, "ssl": "disable"})
}

pub fn mysql_body(database: &str) -> Value {
    json!({"dbType": "mysql", "host": "127.0.0.1", "port": 3306,
           "username": "root", "password": "", "database": database, "ssl": "disable"})
}

pub fn sqlite_body(database: &str) -> Value {
    json!({"dbType": "sqlite", "database": database})
}

/// A TCP port on loopback where nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A listener that accepts connections and never says a word.
pub async fn silent_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// Runs `load` once per test binary and key; concurrent callers wait for the
/// first, so tests sharing a fixture never see it dropped and re-created under them.
async fn once(key: &str, load: impl Future<Output = ()>) {
    type Cells = std::sync::Mutex<
        std::collections::HashMap<String, std::sync::Arc<tokio::sync::OnceCell<()>>>,
    >;
    static LOADED: std::sync::OnceLock<Cells> = std::sync::OnceLock::new();
    let cell = {
        let mut cells = LOADED.get_or_init(Default::default).lock().expect("cells");
        std::sync::Arc::clone(cells.entry(key.to_owned()).or_default())
    };
    cell.get_or_init(|| load).await;
}

/// Runs a fixture file from `tests/fixtures` on PostgreSQL (database `test`), once
/// per test binary.
pub async fn pg_fixture(file: &str) {
    once(file, Box::pin(load_pg_fixture(file))).await;
}

async fn load_pg_fixture(file: &str) {
    ensure_databases();
    let sql = std::fs::read_to_string(fixture_path(file)).expect("fixture");
    pg_admin_execute("test", &sql).await;
}

/// Runs `sql` (one or more statements) on PostgreSQL database `database` as the
/// superuser, outside querygate, through an independent client.
pub async fn pg_admin_execute(database: &str, sql: &str) {
    let client = pg_admin(database).await;
    client.batch_execute(sql).await.expect("admin statement");
}

async fn pg_admin(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("postgres");
    tokio::spawn(connection);
    client
}

/// Runs a fixture file from `tests/fixtures` on MariaDB, once per test binary.
pub async fn mysql_fixture(file: &str) {
    once(file, Box::pin(load_mysql_fixture(file))).await;
}

async fn load_mysql_fixture(file: &str) {
    ensure_databases();
    let sql = std::fs::read_to_string(fixture_path(file)).expect("fixture");
    mysql_admin_execute(&sql).await;
}

/// Runs `sql` (one or more statements) on MariaDB as root, outside querygate.
pub async fn mysql_admin_execute(sql: &str) {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test")
        .await
        .expect("mariadb");
    conn.query_drop(sql).await.expect("admin statement");
    let _ = conn.disconnect().await;
}

/// A statement on PostgreSQL as the superuser, outside querygate (for checks).
pub async fn pg_admin_scalar(sql: &str) -> i64 {
    let client = pg_admin("test").await;
    client
        .query_one(sql, &[])
        .await
        .expect("scalar")
        .get::<_, i64>(0)
}

/// A statement on MariaDB as root, outside querygate (for checks).
pub async fn mysql_admin_scalar(sql: &str) -> i64 {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test")
        .await
        .expect("mariadb");
    let value = conn
        .query_first::<i64, _>(sql)
        .await
        .expect("scalar")
        .expect("a row");
    let _ = conn.disconnect().await;
    value
}

pub fn fixture_path(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

impl TestApp {
    /// Creates SQLite database `name` in the app's SQLite folder from a fixture.
    pub async fn sqlite_fixture(&self, name: &str, file: &str) {
        let sql = std::fs::read_to_string(fixture_path(file)).expect("fixture");
        let path = self.state.db.sqlite().root().join(format!("{name}.db"));
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch(&sql).expect("fixture runs");
    }

    pub async fn execute(&self, token: &str, body: &Value) -> Response {
        self.post_json("/api/database/execute", body, Some(token))
            .await
    }

    /// Runs `sql` and returns `(status, json)`.
    pub async fn sql(&self, token: &str, sql: &str) -> (StatusCode, Value) {
        read(self.execute(token, &json!({ "sql": sql })).await).await
    }

    pub async fn schema(&self, token: &str, query: &str) -> Response {
        self.get(&format!("/api/database/schema{query}"), Some(token))
            .await
    }
}

/// Polls (bounded, 15 s) until `check` holds; `what` names the condition.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while !check().await {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(done.is_ok(), "{what}");
}
