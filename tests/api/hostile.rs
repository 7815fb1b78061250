//! What a hostile PostgreSQL server can send, case by case, against a querygate
//! child process: every case names its exact status and code, and checks that
//! the process is still serving and that its peak memory grew by less than
//! [`MEMORY_BOUND`]. Every failing case is reported in one run.
//!
//! The server is `common::fake_pg`, a scripted stand-in; ordinary behaviour is
//! tested on the real PostgreSQL (`execute`, `types`, `limits`, …).

use std::sync::Arc;
use std::time::Duration;

use crate::common::fake_mysql::{
    FakeMysql, MyScript, columns_head, greeting, login_ok, one_column_head, packet,
};
use crate::common::fake_pg::{
    FakePg, Reply, after_connect, complete, data_row, envelope, error, good_startup, header,
    message, notice, parameter_status, ready, row_description, types_answer,
};
use crate::common::process::ServerProcess;
use crate::common::{KEY_A, read};

/// The most a case may grow the process's peak resident memory.
const MEMORY_BOUND: u64 = 100 * 1024 * 1024;

/// Where the hostile answer comes.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// `connect` itself fails.
    Connect,
    /// `connect` succeeds; `execute` of a statement meets the attack.
    Execute,
    /// `connect` succeeds; the schema read meets the attack.
    Schema,
}

struct Case {
    name: &'static str,
    phase: Phase,
    startup: Reply,
    flights: fn() -> Reply,
    status: u16,
    code: Option<&'static str>,
}

fn numeric(weight: i16, scale: u16, digits: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(digits.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&0_u16.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for digit in digits {
        out.extend_from_slice(&digit.to_be_bytes());
    }
    out
}

/// A one-dimensional array of `count` copies of `element` (element type `oid`).
fn array(oid: u32, count: i32, element: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [1, 0] {
        out.extend_from_slice(&i32::to_be_bytes(word));
    }
    out.extend_from_slice(&oid.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&1_i32.to_be_bytes());
    for _ in 0..count {
        match element {
            None => out.extend_from_slice(&(-1_i32).to_be_bytes()),
            Some(bytes) => {
                out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// One column of type `oid` and one row holding `value`.
fn one_value(oid: u32, value: &[u8]) -> Reply {
    Reply::Send(envelope(
        &[
            row_description(&[("v", oid)]),
            data_row(&[Some(value)]),
            complete("SELECT 1"),
        ]
        .concat(),
    ))
}

fn int_row() -> Vec<u8> {
    data_row(&[Some(&7_i32.to_be_bytes())])
}

/// The statement's answer up to its rows: Parse/BindComplete and the setup.
fn statement_head() -> Vec<u8> {
    let command = |tag: &str| [message(b'1', b""), message(b'2', b""), complete(tag)].concat();
    [
        command("BEGIN"),
        message(b'1', b""),
        message(b'2', b""),
        row_description(&[("v", 23)]),
    ]
    .concat()
}

fn cases() -> Vec<Case> {
    let good = || Reply::Send(good_startup());
    let auth_ok = message(b'R', &0_i32.to_be_bytes());
    vec![
        Case {
            name: "silence at start-up",
            phase: Phase::Connect,
            startup: Reply::Silence,
            flights: || Reply::Silence,
            status: 504,
            code: Some("db_timeout"),
        },
        Case {
            name: "closed at start-up",
            phase: Phase::Connect,
            startup: Reply::SendAndClose(Vec::new()),
            flights: || Reply::Silence,
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "negative length at start-up",
            phase: Phase::Connect,
            startup: Reply::Send(header(b'R', -5)),
            flights: || Reply::Silence,
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a 2 GB notice announced at start-up",
            phase: Phase::Connect,
            startup: Reply::Send(header(b'N', i32::MAX)),
            flights: || Reply::Silence,
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "an authentication method nobody supports",
            phase: Phase::Connect,
            startup: Reply::Send(message(b'R', &7_i32.to_be_bytes())),
            flights: || Reply::Silence,
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "notice flood at start-up",
            phase: Phase::Connect,
            startup: Reply::Flood(auth_ok.clone(), notice(&"n".repeat(1000))),
            flights: || Reply::Silence,
            status: 504,
            code: Some("db_timeout"),
        },
        Case {
            name: "parameter flood at start-up",
            phase: Phase::Connect,
            startup: Reply::Flood(auth_ok, parameter_status("p", &"v".repeat(1000))),
            flights: || Reply::Silence,
            status: 504,
            code: Some("db_timeout"),
        },
        Case {
            name: "silence at the catalogue query",
            phase: Phase::Connect,
            startup: good(),
            flights: || Reply::Silence,
            status: 504,
            code: Some("db_timeout"),
        },
        Case {
            name: "catalogue flood at connect",
            phase: Phase::Connect,
            startup: good(),
            flights: || {
                let nulls = vec![None; 2000];
                Reply::Flood(
                    [message(b'1', b""), message(b'2', b"")].concat(),
                    data_row(&nulls),
                )
            },
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a message out of place in the catalogue answer",
            phase: Phase::Connect,
            startup: good(),
            flights: || Reply::Send([message(b'1', b""), message(b'K', &[0; 8]), ready()].concat()),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a row announcing 2 GB",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Send([statement_head(), header(b'D', i32::MAX)].concat()),
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "a row with a negative length",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Send([statement_head(), header(b'D', -1)].concat()),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a frame cut short, then closed",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let row = int_row();
                Reply::SendAndClose([statement_head(), row[..row.len() - 2].to_vec()].concat())
            },
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "more fields than columns",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let seven = 7_i32.to_be_bytes();
                Reply::Send([statement_head(), data_row(&[Some(&seven), Some(&seven)])].concat())
            },
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "fewer fields than columns",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Send([statement_head(), data_row(&[])].concat()),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a field longer than its row",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let mut body = 1_i16.to_be_bytes().to_vec();
                body.extend_from_slice(&1000_i32.to_be_bytes());
                body.extend_from_slice(b"abc");
                Reply::Send([statement_head(), message(b'D', &body)].concat())
            },
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "a row before its description",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Send(envelope(&[int_row(), complete("SELECT 1")].concat())),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "numeric weight bomb: 30,000 elements of 131,072 digits",
            phase: Phase::Execute,
            startup: good(),
            flights: || one_value(1231, &array(1700, 30_000, Some(&numeric(0x7FFF, 0, &[9])))),
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "one numeric of the largest weight and scale",
            phase: Phase::Execute,
            startup: good(),
            flights: || one_value(1700, &numeric(0x7FFF, 0x3FFF, &[1, 2])),
            status: 200,
            code: None,
        },
        Case {
            name: "an array of a million NULLs",
            phase: Phase::Execute,
            startup: good(),
            flights: || one_value(1007, &array(23, 1_000_000, None)),
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "six dimensions of empty elements",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let mut data = Vec::new();
                for word in [6, 0, 25] {
                    data.extend_from_slice(&i32::to_be_bytes(word));
                }
                for _ in 0..6 {
                    data.extend_from_slice(&10_i32.to_be_bytes());
                    data.extend_from_slice(&1_i32.to_be_bytes());
                }
                data.extend(std::iter::repeat_n(0u8, 4 * 1_000_000));
                one_value(1009, &data)
            },
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "JSON nested 100,000 deep",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                one_value(114, deep.as_bytes())
            },
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "JSON of two million empty arrays",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let wide = format!("[{}[]]", "[],".repeat(2_000_000));
                one_value(114, wide.as_bytes())
            },
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "jsonb of an unknown format version",
            phase: Phase::Execute,
            startup: good(),
            flights: || one_value(3802, b"\x02[1]"),
            status: 200,
            code: None,
        },
        Case {
            name: "rows past the portal's limit, endlessly",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Flood(statement_head(), int_row()),
            status: 200,
            code: None,
        },
        Case {
            name: "notice flood in the middle of a statement",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Flood(statement_head(), notice(&"n".repeat(1000))),
            status: 408,
            code: Some("sql_timeout"),
        },
        Case {
            name: "an 8 MB notice announced mid-statement",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Send([statement_head(), header(b'N', 8 << 20)].concat()),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "silence at the statement",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::Silence,
            status: 408,
            code: Some("sql_timeout"),
        },
        Case {
            name: "silence after the first rows",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::SendThenSilence([statement_head(), int_row(), int_row()].concat()),
            status: 408,
            code: Some("sql_timeout"),
        },
        Case {
            name: "COPY instead of rows",
            phase: Phase::Execute,
            startup: good(),
            flights: || {
                let copy = message(b'H', &[0, 0, 1, 0, 0]);
                Reply::Send([statement_head(), copy].concat())
            },
            status: 400,
            code: Some("sql_error"),
        },
        Case {
            name: "the session ended before the statement, on every connection",
            phase: Phase::Execute,
            startup: good(),
            flights: || Reply::SendAndClose(error("57P01", "terminating connection")),
            status: 502,
            code: Some("db_connection_refused"),
        },
        Case {
            name: "catalogue flood on a schema read",
            phase: Phase::Schema,
            startup: good(),
            flights: || {
                let fields: Vec<Option<&[u8]>> = vec![Some(b"xxxxxxxx"); 7];
                Reply::Flood(
                    [message(b'1', b""), message(b'2', b"")].concat(),
                    data_row(&fields),
                )
            },
            status: 400,
            code: Some("sql_error"),
        },
    ]
}

/// Runs one case; `Err` says what went wrong.
async fn run(server: &ServerProcess, case: &Case) -> Result<(), String> {
    let flights = case.flights;
    let script: crate::common::fake_pg::Script = match case.phase {
        Phase::Connect => Arc::new(move |_, _| flights()),
        Phase::Execute | Phase::Schema => Arc::new(after_connect(flights)),
    };
    let fake = FakePg::start(case.startup.clone(), script).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let baseline = server.reset_peak_memory();
    let connect = http
        .post(server.url("/api/database/connect"))
        .json(&fake.connect_body())
        .send()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (status, body) = read(connect).await;
    let (status, body) = match case.phase {
        Phase::Connect => (status, body),
        Phase::Execute | Phase::Schema if status != 200 => {
            return Err(format!("connect answered {status}: {body}"));
        }
        Phase::Execute | Phase::Schema => {
            let token = body["token"].as_str().unwrap_or_default().to_owned();
            let request = match case.phase {
                Phase::Schema => http.get(server.url("/api/database/schema")),
                _ => http
                    .post(server.url("/api/database/execute"))
                    .json(&serde_json::json!({"sql": "SELECT v", "maxRows": 10})),
            };
            let response = request
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| format!("request: {e}"))?;
            read(response).await
        }
    };
    let growth = server.peak_memory().saturating_sub(baseline);
    let mut problems = Vec::new();
    if status.as_u16() != case.status {
        problems.push(format!("status {status}, expected {}", case.status));
    }
    if let Some(code) = case.code
        && body["code"] != code
    {
        problems.push(format!("code {}, expected {code}", body["code"]));
    }
    if status.as_u16() >= 500
        && body["error"]
            .as_str()
            .is_some_and(|e| e.contains("internal"))
    {
        problems.push("an internal error".to_owned());
    }
    if growth > MEMORY_BOUND {
        problems.push(format!("peak memory grew by {} MB", growth >> 20));
    }
    let health = http.get(server.url("/api/health")).send().await;
    if !health.is_ok_and(|r| r.status() == 200) {
        problems.push("the process stopped serving".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} ({})", problems.join("; "), body["error"]))
    }
}

/// A querygate child process with short database limits (1 s), so that every
/// silence ends quickly; the folders live as long as it does.
struct Instance {
    server: ServerProcess,
    _folders: (tempfile::TempDir, tempfile::TempDir),
}

fn instance(extra: &[(&str, &str)]) -> Instance {
    let folders = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut env = vec![
        ("QUERYGATE_KEYS", KEY_A),
        ("DB_CONNECT_TIMEOUT_MS", "1000"),
        ("STATEMENT_TIMEOUT_MS", "1000"),
        ("RUST_LOG", "info"),
    ];
    env.extend_from_slice(extra);
    Instance {
        server: ServerProcess::start(folders.0.path(), folders.1.path(), &env),
        _folders: folders,
    }
}

#[tokio::test]
async fn nothing_a_hostile_postgresql_server_sends_takes_the_instance_down() {
    let instance = instance(&[]);
    let server = &instance.server;
    let mut failures = Vec::new();
    for case in cases() {
        if let Err(problem) = run(server, &case).await {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A MySQL connect against a scripted server: its expected status and code.
struct MyCase {
    name: &'static str,
    script: fn() -> MyScript,
    status: u16,
    code: &'static str,
}

/// A server that greets and accepts the login normally, then answers the
/// first query with `query`.
fn answer(query: Reply) -> MyScript {
    MyScript {
        greeting: Reply::Send(greeting()),
        login: Reply::Send(login_ok()),
        query,
    }
}

fn mysql_cases() -> Vec<MyCase> {
    vec![
        // The control: the fake speaks the protocol well enough to connect.
        MyCase {
            name: "a well-behaved server",
            script: || {
                // SELECT VERSION(), @@SESSION.sql_mode
                let row = packet(5, b"\x066.0.99\x00");
                let end = packet(6, &[0xfe, 0, 0, 2, 0]);
                answer(Reply::Send([columns_head(2), row, end].concat()))
            },
            status: 200,
            code: "",
        },
        MyCase {
            name: "silence before the greeting",
            script: || MyScript {
                greeting: Reply::Silence,
                login: Reply::Silence,
                query: Reply::Silence,
            },
            status: 504,
            code: "db_timeout",
        },
        MyCase {
            name: "closed before the greeting",
            script: || MyScript {
                greeting: Reply::SendAndClose(Vec::new()),
                login: Reply::Silence,
                query: Reply::Silence,
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "a greeting announcing 16 MB, then closed",
            script: || MyScript {
                greeting: Reply::SendAndClose(vec![0xff, 0xff, 0xff, 0, 10]),
                login: Reply::Silence,
                query: Reply::Silence,
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "endless bytes instead of a greeting",
            script: || MyScript {
                greeting: Reply::Flood(Vec::new(), vec![0xff; 64 * 1024]),
                login: Reply::Silence,
                query: Reply::Silence,
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "silence at the login",
            script: || MyScript {
                greeting: Reply::Send(greeting()),
                login: Reply::Silence,
                query: Reply::Silence,
            },
            status: 504,
            code: "db_timeout",
        },
        MyCase {
            name: "a login answer out of sequence",
            script: || MyScript {
                greeting: Reply::Send(greeting()),
                login: Reply::Send(packet(9, &[0, 0, 0, 2, 0, 0, 0])),
                query: Reply::Silence,
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "silence at the first query",
            script: || answer(Reply::Silence),
            status: 504,
            code: "db_timeout",
        },
        MyCase {
            name: "a LOCAL INFILE request for the first query",
            script: || answer(Reply::Send(packet(1, b"\xfb/etc/passwd"))),
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "a row of endless 16 MB packets",
            script: || {
                let mut chunk = vec![0xff, 0xff, 0xff, 4];
                chunk.extend(vec![b'x'; 0xff_ffff]);
                answer(Reply::Flood(one_column_head(), chunk))
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "a result of 2^40 columns",
            script: || {
                let mut count = vec![0xfe];
                count.extend_from_slice(&(1_u64 << 40).to_le_bytes());
                answer(Reply::Send(packet(1, &count)))
            },
            status: 502,
            code: "db_connection_refused",
        },
        MyCase {
            name: "endless column definitions",
            script: || {
                let head = one_column_head();
                let definition = head[5..head.len() - 9].to_vec();
                answer(Reply::Flood(packet(1, &[0xfc, 0xff, 0xff]), definition))
            },
            status: 502,
            code: "db_connection_refused",
        },
    ]
}

#[tokio::test]
async fn nothing_a_hostile_mysql_server_sends_takes_the_instance_down() {
    let instance = instance(&[]);
    let server = &instance.server;
    let http = reqwest::Client::new();
    let mut failures = Vec::new();
    for case in mysql_cases() {
        let fake = FakeMysql::start((case.script)()).await;
        let baseline = server.reset_peak_memory();
        let answer = http
            .post(server.url("/api/database/connect"))
            .json(&fake.connect_body())
            .send()
            .await;
        let Ok(answer) = answer else {
            failures.push(format!("{}: no answer", case.name));
            continue;
        };
        let (status, body) = read(answer).await;
        let growth = server.peak_memory().saturating_sub(baseline);
        let code = body["code"].as_str().unwrap_or_default();
        if status.as_u16() != case.status || code != case.code {
            failures.push(format!(
                "{}: {status} {}, expected {} {}",
                case.name, body["code"], case.status, case.code
            ));
        }
        if growth > MEMORY_BOUND {
            failures.push(format!(
                "{}: peak memory grew by {} MB",
                case.name,
                growth >> 20
            ));
        }
    }
    let health = http.get(server.url("/api/health")).send().await;
    assert!(
        health.is_ok_and(|r| r.status() == 200),
        "the process stopped serving"
    );
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_database_gone_silent_under_load_answers_every_waiting_request_with_a_timeout() {
    // Sessions start normally; then every flight and every new session goes
    // unanswered, as behind a frozen proxy.
    let fake = FakePg::start_each(
        Arc::new(|connection| {
            if connection == 0 {
                Reply::Send(good_startup())
            } else {
                Reply::Silence
            }
        }),
        Arc::new(|flight, connection| {
            if flight == 0 && connection == 0 {
                Reply::Send(types_answer())
            } else {
                Reply::Silence
            }
        }),
    )
    .await;
    let instance = instance(&[("POOL_MAX_CONNECTIONS", "4")]);
    let server = &instance.server;
    let token = server.token_for(&fake.connect_body()).await;
    let http = reqwest::Client::new();
    let requests = (0..40).map(|_| {
        http.post(server.url("/api/database/execute"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"sql": "SELECT v"}))
            .send()
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for answer in answers {
        let (status, body) = read(answer.expect("answer")).await;
        *codes
            .entry(format!("{status} {}", body["code"]))
            .or_default() += 1;
    }
    assert!(
        codes.keys().all(|code| code.contains("timeout")),
        "every answer must say the database timed out: {codes:?}"
    );
}
