//! The `querygate` command line: keygen and help.

use std::process::Command;

fn querygate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_querygate"));
    command.env_clear();
    command
}

#[test]
fn keygen_writes_a_private_key_file_that_the_server_can_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let output = querygate()
        .args(["keygen", "--kid", "k2027", "--keys-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = dir.path().join("k2027.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let ring = querygate::token::KeyRing::from_dir(dir.path(), None)
        .expect("load")
        .expect("a key");
    assert_eq!(ring.active().kid, "k2027");
    // A second keygen with the same id never overwrites the first.
    let again = querygate()
        .args(["keygen", "--kid", "k2027", "--keys-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!again.status.success());
}

#[test]
fn keygen_print_gives_a_usable_querygate_keys_entry() {
    let output = querygate()
        .args(["keygen", "--print", "--kid", "printed"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let line = String::from_utf8(output.stdout).expect("utf8");
    let value = querygate::secret::Secret::new(line.trim());
    let ring = querygate::token::KeyRing::from_env_value(&value).expect("usable");
    assert_eq!(ring.active().kid, "printed");
}

#[test]
fn keygen_refuses_an_invalid_key_id() {
    for args in [
        &["keygen", "--print", "--kid", "bad/kid"][..],
        &["keygen", "--kid", "../escape"][..],
    ] {
        let output = querygate().args(args).output().expect("run");
        assert!(!output.status.success(), "{args:?}");
    }
}

#[test]
fn serve_help_lists_every_setting() {
    let output = querygate().args(["serve", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "PORT",
        "HOST",
        "FRONTEND_URL",
        "CORS_ALLOWED_ORIGINS",
        "RATE_LIMIT_WINDOW_MS",
        "RATE_LIMIT_MAX_REQUESTS",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "QUERYGATE_ENV",
        "QUERYGATE_KEYS",
        "QUERYGATE_KEYS_DIR",
        "TOKEN_TTL",
        "TOKEN_MAX_LIFETIME",
        "TOKEN_LEEWAY",
        "TOKEN_ISSUER",
        "TOKEN_AUDIENCE",
        "SQLITE_DIR",
        "MAX_ROWS",
        "STATEMENT_TIMEOUT_MS",
        "DB_ALLOWED_HOSTS",
        "DB_DENIED_NETWORKS",
        "TRUST_PROXY",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help does not list {variable}"
        );
    }
}
