//! Connections as libpq makes them, against the test cluster with TLS on
//! (`scripts/cluster.sh`; its CA in HYPERSWAP_TEST_TLS_DIR): every test resolves its
//! settings with an environment of its own (`ConnectOptions::resolve_in`) or runs the
//! binary with one, so no test touches this process's environment.
#![cfg(db_tests)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestDb;
use hyperswap::conn::{ConnectOptions, Env};
use tokio_postgres::Client;

fn tls_dir() -> PathBuf {
    std::env::var("HYPERSWAP_TEST_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            panic!("HYPERSWAP_TEST_TLS_DIR is not set: run the tests with `bash scripts/test.sh`")
        })
}

fn ca() -> String {
    tls_dir().join("ca.crt").display().to_string()
}

/// The test cluster's port, from its admin URL.
fn port() -> u16 {
    let url = common::admin_url();
    let authority = url.rsplit_once('/').unwrap().0;
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// An environment with nothing of libpq's in it, and no home directory files.
fn env(dir: &Path, vars: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    env.insert("HOME".into(), dir.display().to_string());
    env.insert("PGSYSCONFDIR".into(), dir.display().to_string());
    for (k, v) in vars {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn connect(db: &TestDb, conninfo: &str, vars: &[(&str, &str)]) -> hyperswap::Result<Client> {
    ConnectOptions::resolve_in(Some(conninfo), &env(&db.dir, vars))?
        .connect("hyperswap test")
        .await
}

async fn uses_tls(client: &Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and certificate with common name `cn` signed by the CA `ca_crt`/`ca_key`.
fn signed_cert(dir: &Path, cn: &str, ca_crt: &str, ca_key: &str) -> (String, String) {
    let (key, csr, crt) = (
        format!("{cn}.key"),
        format!("{cn}.csr"),
        format!("{cn}.crt"),
    );
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-subj",
            &subj,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    // Extensions make it X.509 v3, which rustls (like any current client) requires.
    let ext = format!("{cn}.ext");
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            // The serial file in the test's directory, not beside the cluster's CA.
            "-CAserial",
            "ca.srl",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    set_mode(&dir.join(&key), 0o600);
    let path = |f: &str| dir.join(f).display().to_string();
    (path(&crt), path(&key))
}

/// A CA of the test's own, unrelated to the cluster's.
fn other_ca(dir: &Path) -> String {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=another CA",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
            "other-ca.key",
            "-out",
            "other-ca.crt",
        ],
    );
    dir.join("other-ca.crt").display().to_string()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Creates a login role if it is missing; tests in other binaries may race us to it.
async fn ensure_role(client: &Client, role: &str, password: Option<&str>) {
    let create = format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    client.batch_execute(&create).await.unwrap();
    if let Some(p) = password {
        client
            .batch_execute(&format!("ALTER ROLE {role} PASSWORD '{p}'"))
            .await
            .unwrap();
    }
}

fn err_text(r: hyperswap::Result<Client>) -> String {
    match r {
        Ok(_) => panic!("expected the connection to be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn require_and_verify_full_connect_with_tls() {
    let db = TestDb::new("tls_require_verify_full").await;
    let p = port();
    let require = format!(
        "host=127.0.0.1 port={p} dbname={} user=postgres sslmode=require",
        db.name
    );
    let client = connect(&db, &require, &[]).await.unwrap();
    assert!(uses_tls(&client).await);
    let full = format!(
        "postgres://postgres@localhost:{p}/{}?sslmode=verify-full&sslrootcert={}",
        db.name,
        ca()
    );
    let client = connect(&db, &full, &[]).await.unwrap();
    assert!(uses_tls(&client).await);
    let name: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "hyperswap test");
    // sslnegotiation=direct starts TLS at once, which PostgreSQL 15 does not understand
    // (it expects the SSLRequest that the same settings without it send).
    let e = err_text(connect(&db, &format!("{require} sslnegotiation=direct"), &[]).await);
    assert!(e.contains("error performing TLS handshake"), "{e}");
    // The default, prefer, uses TLS when the server offers it.
    let prefer = format!("host=localhost port={p} dbname={} user=postgres", db.name);
    assert!(uses_tls(&connect(&db, &prefer, &[]).await.unwrap()).await);
}

#[tokio::test]
async fn sslmode_disable_connects_without_tls() {
    let db = TestDb::new("tls_disable").await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
        port(),
        db.name
    );
    assert!(!uses_tls(&connect(&db, &url, &[]).await.unwrap()).await);
    // The environment's sslmode applies when the URL has none.
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", port(), db.name);
    let client = connect(&db, &url, &[("PGSSLMODE", "disable")])
        .await
        .unwrap();
    assert!(!uses_tls(&client).await);
    // A Unix socket never uses TLS, whatever the sslmode, as in libpq.
    let socket_dir: String = client
        .query_one("SHOW unix_socket_directories", &[])
        .await
        .unwrap()
        .get(0);
    let socket_dir = socket_dir.split(',').next().unwrap().trim().to_string();
    let local = format!(
        "host={socket_dir} port={} dbname={} user=postgres sslmode=require",
        port(),
        db.name
    );
    assert!(!uses_tls(&connect(&db, &local, &[]).await.unwrap()).await);
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_lacks() {
    let db = TestDb::new("tls_wrong_name").await;
    let base = format!(
        "host=db.invalid hostaddr=127.0.0.1 port={} dbname={} user=postgres sslrootcert={}",
        port(),
        db.name,
        ca()
    );
    let e = err_text(connect(&db, &format!("{base} sslmode=verify-full"), &[]).await);
    assert!(
        e.contains("TLS") && e.contains("not valid for name \"db.invalid\""),
        "{e}"
    );
    // verify-ca checks the chain only, as in libpq.
    let client = connect(&db, &format!("{base} sslmode=verify-ca"), &[])
        .await
        .unwrap();
    assert!(uses_tls(&client).await);
    // hostaddr alone: the certificate must name the address (the cluster's does).
    let addr_only = format!(
        "hostaddr=127.0.0.1 port={} dbname={} user=postgres sslmode=verify-full sslrootcert={}",
        port(),
        db.name,
        ca()
    );
    assert!(uses_tls(&connect(&db, &addr_only, &[]).await.unwrap()).await);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let db = TestDb::new("tls_other_ca").await;
    let other = other_ca(&db.dir);
    let base = format!(
        "host=localhost port={} dbname={} user=postgres sslrootcert={other}",
        port(),
        db.name
    );
    let e = err_text(connect(&db, &format!("{base} sslmode=verify-ca"), &[]).await);
    assert!(e.contains("UnknownIssuer"), "{e}");
    // With a root certificate, require checks the chain like verify-ca (libpq's rule) ...
    let e = err_text(connect(&db, &format!("{base} sslmode=require"), &[]).await);
    assert!(e.contains("UnknownIssuer"), "{e}");
    // ... and prefer, as libpq does, falls back to a connection without TLS.
    let client = connect(&db, &format!("{base} sslmode=prefer"), &[])
        .await
        .unwrap();
    assert!(!uses_tls(&client).await);
}

#[tokio::test]
async fn a_client_certificate_logs_in_the_cert_user() {
    let db = TestDb::new("tls_client_cert").await;
    ensure_role(&db.client().await, "hyperswap_cert", None).await;
    let dir = tls_dir();
    let (crt, key) = signed_cert(
        &db.dir,
        "hyperswap_cert",
        &dir.join("ca.crt").display().to_string(),
        &dir.join("ca.key").display().to_string(),
    );
    let base = format!(
        "host=localhost port={} dbname={} user=hyperswap_cert sslmode=verify-full sslrootcert={}",
        port(),
        db.name,
        ca()
    );
    let client = connect(&db, &format!("{base} sslcert={crt} sslkey={key}"), &[])
        .await
        .unwrap();
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "hyperswap_cert");
    // The same files from the environment, as PGSSLCERT / PGSSLKEY.
    let client = connect(&db, &base, &[("PGSSLCERT", &crt), ("PGSSLKEY", &key)])
        .await
        .unwrap();
    assert!(uses_tls(&client).await);
    // Without a certificate the server refuses the cert user.
    let e = err_text(connect(&db, &base, &[]).await);
    assert!(e.contains("hyperswap_cert"), "{e}");
    // A key others can read is refused before connecting, as libpq refuses it.
    set_mode(Path::new(&key), 0o644);
    let e = err_text(connect(&db, &format!("{base} sslcert={crt} sslkey={key}"), &[]).await);
    assert!(
        e.contains("can be read by others") && e.contains("fix: chmod "),
        "{e}"
    );
}

#[tokio::test]
async fn scram_with_channel_binding_over_tls_and_allow_falls_back_to_tls() {
    let db = TestDb::new("tls_scram").await;
    ensure_role(&db.client().await, "hyperswap_scram", Some("scram-test-pw")).await;
    let base = format!(
        "host=localhost port={} dbname={} user=hyperswap_scram password=scram-test-pw",
        port(),
        db.name
    );
    let client = connect(
        &db,
        &format!("{base} sslmode=require channel_binding=require"),
        &[],
    )
    .await
    .unwrap();
    assert!(uses_tls(&client).await);
    let method: String = client
        .query_one("SELECT current_setting('password_encryption')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "scram-sha-256");
    // The role may only log in over TLS: allow tries without, is refused, then uses TLS.
    let client = connect(&db, &format!("{base} sslmode=allow"), &[])
        .await
        .unwrap();
    assert!(uses_tls(&client).await);
    let e = err_text(connect(&db, &format!("{base} sslmode=disable"), &[]).await);
    assert!(
        e.contains("no encryption") && !e.contains("scram-test-pw"),
        "{e}"
    );
    // The password from the password file, matched on this host, port, database, user.
    let pgpass = db.dir.join("pgpass");
    let line = format!(
        "localhost:{}:{}:hyperswap_scram:scram-test-pw\n",
        port(),
        db.name
    );
    std::fs::write(&pgpass, format!("otherhost:*:*:*:wrong\n{line}")).unwrap();
    set_mode(&pgpass, 0o600);
    let no_password = format!(
        "host=localhost port={} dbname={} user=hyperswap_scram sslmode=require",
        port(),
        db.name
    );
    let pgpass = pgpass.display().to_string();
    connect(&db, &no_password, &[("PGPASSFILE", &pgpass)])
        .await
        .unwrap();
    // Without it, the server asks for a password that is not there.
    assert!(connect(&db, &no_password, &[]).await.is_err());
}

#[tokio::test]
async fn a_service_file_reaches_the_right_database() {
    let db = TestDb::new("tls_service").await;
    let file = db.dir.join("services.conf");
    let text = format!(
        "# test services\n[other]\ndbname=postgres\n\n[hs]\nhost=127.0.0.1\nport={}\ndbname={}\nuser=postgres\nsslmode=verify-full\nsslrootcert={}\n",
        port(), db.name, ca()
    );
    std::fs::write(&file, text).unwrap();
    let file = file.display().to_string();
    let vars = [("PGSERVICEFILE", file.as_str()), ("PGSERVICE", "hs")];
    let opts = ConnectOptions::resolve_in(None, &env(&db.dir, &vars)).unwrap();
    let client = opts.connect("hyperswap test").await.unwrap();
    let name: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, db.name);
    assert!(uses_tls(&client).await);
    assert_eq!(opts.sslmode(), "verify-full");
    // service= in the connection string, with PGSERVICEFILE from the environment.
    let opts = ConnectOptions::resolve_in(Some("service=hs"), &env(&db.dir, &vars[..1])).unwrap();
    assert!(
        opts.describe().ends_with(&format!("/{}", db.name)),
        "{}",
        opts.describe()
    );
    let e = ConnectOptions::resolve_in(None, &env(&db.dir, &[vars[0], ("PGSERVICE", "nope")]))
        .err()
        .expect("an unknown service is refused")
        .to_string();
    assert!(
        e.contains("service `nope` is not defined") && e.contains(&file),
        "{e}"
    );
}

#[tokio::test]
async fn several_hosts_are_tried_in_turn_and_target_session_attrs_is_checked() {
    let db = TestDb::new("tls_hosts").await;
    let url = format!(
        "postgres://postgres@127.0.0.1:1,localhost:{}/{}?sslmode=require",
        port(),
        db.name
    );
    assert!(uses_tls(&connect(&db, &url, &[]).await.unwrap()).await);
    let hosts = format!(
        "host=127.0.0.1,localhost port=1,{} dbname={} user=postgres",
        port(),
        db.name
    );
    connect(&db, &format!("{hosts} target_session_attrs=primary"), &[])
        .await
        .unwrap();
    connect(&db, &hosts, &[("PGTARGETSESSIONATTRS", "prefer-standby")])
        .await
        .unwrap();
    let e = err_text(connect(&db, &format!("{hosts} target_session_attrs=standby"), &[]).await);
    assert!(
        e.contains("every host failed") && e.contains("not a standby") && e.contains("127.0.0.1:1"),
        "{e}"
    );
}

#[tokio::test]
async fn the_users_application_name_follows_hyperswaps() {
    let db = TestDb::new("tls_appname").await;
    let url = format!("postgres://postgres@localhost:{}/{}", port(), db.name);
    let client = connect(&db, &url, &[("PGAPPNAME", "billing")])
        .await
        .unwrap();
    let name: String = client
        .query_one(
            "SELECT application_name::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "hyperswap test (billing)");
}

#[tokio::test]
async fn an_unparsable_url_says_which_part() {
    let db = TestDb::new("tls_bad_url").await;
    let e = err_text(connect(&db, "postgres://postgres@localhost:54x/db", &[]).await);
    assert!(
        e.contains("the database URL cannot be parsed") && e.contains("port `54x`"),
        "{e}"
    );
    let e = err_text(
        connect(
            &db,
            "postgres://localhost/db?sslmode=require&colour=blue",
            &[],
        )
        .await,
    );
    assert!(e.contains("unknown parameter `colour`"), "{e}");
}

/// The binary with an environment of its own: no DATABASE_URL or PG* variable leaks in.
fn hyperswap(db: &TestDb, vars: &[(&str, &str)], args: &[&str]) -> common::Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperswap"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env(&db.dir, vars) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hyperswap");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_cli_connects_with_verify_full_and_refuses_what_it_cannot_verify() {
    let db = TestDb::new("tls_cli").await;
    let url = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        port(),
        db.name,
        ca()
    );
    hyperswap(&db, &[("DATABASE_URL", &url)], &["status"]).ok();
    // sslrootcert=system: the system's CAs, here SSL_CERT_FILE; verify-full by default.
    let system = format!(
        "postgres://postgres@localhost:{}/{}?sslrootcert=system",
        port(),
        db.name
    );
    let ca = ca();
    hyperswap(
        &db,
        &[("DATABASE_URL", &system), ("SSL_CERT_FILE", &ca)],
        &["status"],
    )
    .ok();
    let weak = format!("{system}&sslmode=require");
    let run = hyperswap(
        &db,
        &[("DATABASE_URL", &weak), ("SSL_CERT_FILE", &ca)],
        &["status"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("too weak for sslrootcert=system"),
        "{}",
        run.stderr
    );
    let other = other_ca(&db.dir);
    let bad = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={other}",
        port(),
        db.name
    );
    let run = hyperswap(&db, &[("DATABASE_URL", &bad)], &["status"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot connect") && run.stderr.contains("UnknownIssuer"),
        "{}",
        run.stderr
    );
    // PGSERVICE naming no service is an error, not a fallback to another server.
    let run = hyperswap(&db, &[("PGSERVICE", "missing-service")], &["status"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("service `missing-service` is not defined"),
        "{}",
        run.stderr
    );
    let run = hyperswap(
        &db,
        &[("PGGSSLIB", "gssapi"), ("DATABASE_URL", &url)],
        &["status"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("`gsslib` (or PGGSSLIB) is not supported"),
        "{}",
        run.stderr
    );
}
