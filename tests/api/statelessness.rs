//! The server keeps no session: a token minted by one instance works on another
//! with the same keys and survives a restart; other keys reject it.

use crate::common::process::ServerProcess;
use crate::common::*;
use serde_json::{Value, json};

const SECRET_PG_PASSWORD: &str = SECRET_PASSWORD;

struct Dirs {
    sqlite: tempfile::TempDir,
    keys: tempfile::TempDir,
}

fn dirs() -> Dirs {
    Dirs {
        sqlite: tempfile::tempdir().expect("tmp"),
        keys: tempfile::tempdir().expect("tmp"),
    }
}

async fn checked_status(server: &ServerProcess, token: &str) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(server.url("/api/database/status?check=true"))
        .bearer_auth(token)
        .send()
        .await
        .expect("status");
    read(response).await
}

fn secret_pg() -> Value {
    json!({"dbType": "postgresql", "host": "127.0.0.1", "username": SECRET_USER,
           "password": SECRET_PG_PASSWORD, "database": "test", "ssl": "disable"})
}

#[tokio::test]
async fn token_from_one_instance_is_served_by_another_with_the_same_keys() {
    let (one_dirs, two_dirs) = (dirs(), dirs());
    let keys = [("QUERYGATE_KEYS", KEY_A)];
    let one = ServerProcess::start(one_dirs.sqlite.path(), one_dirs.keys.path(), &keys);
    let two = ServerProcess::start(two_dirs.sqlite.path(), two_dirs.keys.path(), &keys);
    for body in [secret_pg(), mysql_body("test"), sqlite_body("demo")] {
        let token = one.token_for(&body).await;
        let (status, answer) = checked_status(&two, &token).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["connected"], true);
        assert_eq!(answer["check"]["ok"], true);
    }
}

#[tokio::test]
async fn token_survives_a_restart() {
    let dirs = dirs();
    let keys = [("QUERYGATE_KEYS", KEY_A)];
    let first = ServerProcess::start(dirs.sqlite.path(), dirs.keys.path(), &keys);
    let token = first.token_for(&secret_pg()).await;
    first.stop();
    let second = ServerProcess::start(dirs.sqlite.path(), dirs.keys.path(), &keys);
    let (status, answer) = checked_status(&second, &token).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["check"]["ok"], true);
}

#[tokio::test]
async fn development_key_in_the_keys_folder_survives_a_restart() {
    let dirs = dirs();
    let first = ServerProcess::start(dirs.sqlite.path(), dirs.keys.path(), &[]);
    assert!(dirs.keys.path().join("dev.key").is_file());
    assert!(
        first.logs().contains("DEVELOPMENT key"),
        "the dev key is announced loudly"
    );
    let token = first.token_for(&sqlite_body("demo")).await;
    first.stop();
    let second = ServerProcess::start(dirs.sqlite.path(), dirs.keys.path(), &[]);
    let (status, answer) = checked_status(&second, &token).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn an_instance_with_different_keys_rejects_the_token() {
    let (one_dirs, two_dirs) = (dirs(), dirs());
    let one = ServerProcess::start(
        one_dirs.sqlite.path(),
        one_dirs.keys.path(),
        &[("QUERYGATE_KEYS", KEY_A)],
    );
    let two = ServerProcess::start(
        two_dirs.sqlite.path(),
        two_dirs.keys.path(),
        &[("QUERYGATE_KEYS", KEY_B)],
    );
    let token = one.token_for(&sqlite_body("demo")).await;
    let (status, answer) = checked_status(&two, &token).await;
    assert_error(status, &answer, 401, "token_invalid");
}

#[tokio::test]
async fn rotation_keeps_old_tokens_until_their_version_is_removed() {
    let dirs = dirs();
    let old = ServerProcess::start(
        dirs.sqlite.path(),
        dirs.keys.path(),
        &[("QUERYGATE_KEYS", KEY_A)],
    );
    let token = old.token_for(&sqlite_body("demo")).await;
    old.stop();
    let both = format!("{KEY_B},{KEY_A}");
    let rotated = ServerProcess::start(
        dirs.sqlite.path(),
        dirs.keys.path(),
        &[("QUERYGATE_KEYS", &both)],
    );
    let (status, _) = checked_status(&rotated, &token).await;
    assert_eq!(status, 200, "the old version still verifies");
    rotated.stop();
    let retired = ServerProcess::start(
        dirs.sqlite.path(),
        dirs.keys.path(),
        &[("QUERYGATE_KEYS", KEY_B)],
    );
    let (status, answer) = checked_status(&retired, &token).await;
    assert_error(status, &answer, 401, "token_invalid");
}

#[test]
fn production_refuses_to_start_without_keys() {
    let dirs = dirs();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_querygate"))
        .env_clear()
        .env("QUERYGATE_ENV", "production")
        .env("QUERYGATE_KEYS_DIR", dirs.keys.path())
        .env("SQLITE_DIR", dirs.sqlite.path())
        .env("PORT", "0")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no keys configured"), "{stderr}");
    assert!(!dirs.keys.path().join("dev.key").exists());
}
