//! Parsing and resolution, without a server: every environment here is a map.

use std::path::PathBuf;
use std::time::Duration;

use super::params::{assemble, parse, Env, Params};
use super::service::parse_service_file;
use super::settings::{build, targets, Host, Settings};
use super::sslmode::{RootCert, SslMode};
use super::{session_name, ConnectOptions};

fn env(vars: &[(&str, &str)]) -> Env {
    let mut env: Env = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("HOME".into())
        .or_insert_with(|| "/nonexistent-home".into());
    env.entry("PGSYSCONFDIR".into())
        .or_insert_with(|| "/nonexistent-sysconf".into());
    env
}

fn settings(conninfo: &str, vars: &[(&str, &str)]) -> crate::Result<Settings> {
    let env = env(vars);
    build(&assemble(Some(conninfo), &env)?, &env)
}

fn err(r: crate::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("expected an error").to_string()
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperswap-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(params: &Params, key: &str) -> Option<String> {
    params.get(key).cloned()
}

#[test]
fn a_url_with_every_part() {
    let params = parse(
        "postgresql://al%40ice:p%3Ass@h1:5433,[::1]:5434,h3/my%20db?sslmode=verify-full&application_name=x%20y",
    )
    .unwrap();
    assert_eq!(p(&params, "user").as_deref(), Some("al@ice"));
    assert_eq!(p(&params, "password").as_deref(), Some("p:ss"));
    assert_eq!(p(&params, "host").as_deref(), Some("h1,::1,h3"));
    assert_eq!(p(&params, "port").as_deref(), Some("5433,5434,"));
    assert_eq!(p(&params, "dbname").as_deref(), Some("my db"));
    assert_eq!(p(&params, "sslmode").as_deref(), Some("verify-full"));
    assert_eq!(p(&params, "application_name").as_deref(), Some("x y"));
    let params = parse("postgres://%2Fvar%2Frun%2Fpostgresql/app?ssl=true").unwrap();
    assert_eq!(p(&params, "host").as_deref(), Some("/var/run/postgresql"));
    assert_eq!(p(&params, "sslmode").as_deref(), Some("require"));
    assert_eq!(parse("postgres://").unwrap(), Params::new());
}

#[test]
fn a_bad_url_says_which_part() {
    for (url, says) in [
        ("postgres://u@h:54x/db", "the port `54x` of host `h`"),
        (
            "postgres://u@h/db?colour=blue",
            "unknown parameter `colour`",
        ),
        ("postgres://u@[::1/db", "`[` without its closing `]`"),
        ("postgres://u@[::1]x/db", "only `:PORT` may follow"),
        (
            "postgres://u%zz@h/db",
            "the user name has an invalid %-escape",
        ),
        (
            "postgres://u@h/db?sslmode",
            "the parameter `sslmode` has no `=value`",
        ),
        ("mysql://u@h/db", "scheme is not `postgres://`"),
    ] {
        let e = err(parse(url));
        assert!(
            e.contains("the database URL cannot be parsed") && e.contains(says),
            "{url}: {e}"
        );
    }
    let e = err(parse("postgres://u:s3cr%zzet@h/db"));
    assert!(
        e.contains("the password has an invalid %-escape") && !e.contains("s3cr"),
        "{e}"
    );
}

#[test]
fn key_value_strings_as_libpq_reads_them() {
    let params = parse(
        r"host=h1,h2  port = 5432 password='it\'s a secret' dbname=my\ db options='-c geqo=off'",
    )
    .unwrap();
    assert_eq!(p(&params, "host").as_deref(), Some("h1,h2"));
    assert_eq!(p(&params, "port").as_deref(), Some("5432"));
    assert_eq!(p(&params, "password").as_deref(), Some("it's a secret"));
    assert_eq!(p(&params, "dbname").as_deref(), Some("my db"));
    assert_eq!(p(&params, "options").as_deref(), Some("-c geqo=off"));
    assert!(err(parse("host")).contains("`host` is not followed by `=`"));
    assert!(err(parse("password='open")).contains("the value of `password` has no closing quote"));
    assert!(err(parse("hots=x")).contains("unknown keyword `hots`"));
}

#[test]
fn the_connection_string_beats_the_service_which_beats_the_environment() {
    let dir = temp_dir("precedence");
    let file = dir.join("services.conf");
    std::fs::write(
        &file,
        "[svc]\ndbname=from_service\nport=6000\nuser=svc_user\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let vars = [
        ("PGSERVICEFILE", file.as_str()),
        ("PGSERVICE", "svc"),
        ("PGPORT", "7000"),
        ("PGHOST", "env-host"),
        ("PGUSER", "env_user"),
    ];
    let params = assemble(Some("dbname=from_string"), &env(&vars)).unwrap();
    assert_eq!(p(&params, "dbname").as_deref(), Some("from_string"));
    assert_eq!(p(&params, "port").as_deref(), Some("6000"));
    assert_eq!(p(&params, "user").as_deref(), Some("svc_user"));
    assert_eq!(p(&params, "host").as_deref(), Some("env-host"));
    // service= in the string names the service when PGSERVICE does not.
    let params = assemble(Some("service=svc"), &env(&vars[..1])).unwrap();
    assert_eq!(p(&params, "dbname").as_deref(), Some("from_service"));
    // An empty variable counts as unset, as in libpq.
    let params = assemble(None, &env(&[("PGHOST", "")])).unwrap();
    assert_eq!(p(&params, "host"), None);
}

#[test]
fn the_system_service_file_is_read_when_the_users_lacks_the_service() {
    let dir = temp_dir("sysconf");
    std::fs::write(dir.join("user.conf"), "[mine]\nport=1\n").unwrap();
    std::fs::write(
        dir.join("pg_service.conf"),
        "[shared]\nport=2\n[mine]\nport=3\n",
    )
    .unwrap();
    let user = dir.join("user.conf").display().to_string();
    let sys = dir.display().to_string();
    let vars = [
        ("PGSERVICEFILE", user.as_str()),
        ("PGSYSCONFDIR", sys.as_str()),
    ];
    let port = |service: &str| {
        let params = assemble(Some(&format!("service={service}")), &env(&vars)).unwrap();
        p(&params, "port")
    };
    assert_eq!(port("shared").as_deref(), Some("2"));
    assert_eq!(port("mine").as_deref(), Some("1"));
    let e = err(assemble(Some("service=none"), &env(&vars)));
    assert!(
        e.contains("service `none` is not defined")
            && e.contains("user.conf")
            && e.contains("pg_service.conf"),
        "{e}"
    );
}

#[test]
fn service_files_parse_strictly() {
    let file = std::path::Path::new("svc.conf");
    let text = "# comment\n\n[a]\nhost = h1\n  port=5\n[b]\nhost=h2\n[a]\nhost=h3\n";
    let a = parse_service_file(text, "a", file).unwrap().unwrap();
    assert_eq!(p(&a, "host").as_deref(), Some("h1"));
    assert_eq!(p(&a, "port").as_deref(), Some("5"));
    assert_eq!(parse_service_file(text, "c", file).unwrap(), None);
    let e = err(parse_service_file("[a]\nhots=x\n", "a", file));
    assert!(
        e.contains("svc.conf, line 2: unknown keyword `hots`"),
        "{e}"
    );
    let e = err(parse_service_file("[a]\nservice=b\n", "a", file));
    assert!(e.contains("cannot name another service"), "{e}");
    assert!(err(parse_service_file("[a\n", "a", file)).contains("line 1"));
}

#[test]
fn several_hosts_with_their_ports_and_addresses() {
    let t = targets(Some("h1,h2"), None, Some("5433")).unwrap();
    assert_eq!(t.iter().map(|t| t.port).collect::<Vec<_>>(), [5433, 5433]);
    let t = targets(Some("h1,/tmp/sock"), Some("10.0.0.1,"), Some("1,")).unwrap();
    assert_eq!(t[0].host, Some(Host::Tcp("h1".into())));
    assert_eq!(t[0].hostaddr, Some("10.0.0.1".parse().unwrap()));
    assert_eq!((t[0].port, t[1].port), (1, 5432));
    assert_eq!(t[1].host, Some(Host::Unix("/tmp/sock".into())));
    let t = targets(None, Some("127.0.0.1"), None).unwrap();
    assert_eq!((t[0].host.clone(), t.len()), (None, 1));
    assert!(err(targets(Some("a,b,c"), None, Some("1,2"))).contains("3 hosts but 2 ports"));
    assert!(
        err(targets(Some("a,b"), Some("127.0.0.1"), None)).contains("2 host names but 1 hostaddr")
    );
    assert!(err(targets(Some("a"), Some("db.example"), None))
        .contains("`hostaddr` (or PGHOSTADDR) has the invalid value"));
    assert!(err(targets(Some("a"), None, Some("0"))).contains("`port` (or PGPORT)"));
}

#[test]
fn libpq_defaults_and_timeouts() {
    let s = settings("host=h", &[("USER", "osuser")]).unwrap();
    assert_eq!((s.user.as_str(), s.dbname.as_str()), ("osuser", "osuser"));
    assert_eq!(s.tls.mode, SslMode::Prefer);
    assert_eq!(s.tls.root, RootCert::None);
    assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
    assert_eq!(
        settings("host=h connect_timeout=0", &[])
            .unwrap()
            .connect_timeout,
        None
    );
    let s = settings("host=h", &[("PGCONNECT_TIMEOUT", "1")]).unwrap();
    assert_eq!(s.connect_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        settings("host=h requiressl=1", &[]).unwrap().tls.mode,
        SslMode::Require
    );
    let s = settings(
        "host=h",
        &[
            ("PGAPPNAME", "app"),
            ("PGOPTIONS", "-c a=b"),
            ("PGTZ", "Europe/Paris"),
        ],
    )
    .unwrap();
    assert_eq!(s.application_name.as_deref(), Some("app"));
    assert_eq!(
        s.options.as_deref(),
        Some("-c a=b -c timezone=Europe/Paris")
    );
    assert!(err(settings("host=h sslmode=maybe", &[]))
        .contains("use one of: disable, allow, prefer, require, verify-ca, verify-full"));
}

#[test]
fn root_and_client_certificates_from_home_as_libpq_finds_them() {
    let home = temp_dir("home");
    let dot = home.join(".postgresql");
    std::fs::create_dir_all(&dot).unwrap();
    std::fs::write(dot.join("root.crt"), "").unwrap();
    std::fs::write(dot.join("postgresql.crt"), "").unwrap();
    let h = home.display().to_string();
    let e = err(settings("host=h", &[("HOME", &h)]));
    assert!(e.contains("postgresql.key does not exist"), "{e}");
    std::fs::write(dot.join("postgresql.key"), "").unwrap();
    let s = settings("host=h", &[("HOME", &h)]).unwrap();
    assert_eq!(s.tls.root, RootCert::File(dot.join("root.crt")));
    assert_eq!(
        s.tls.client,
        Some((dot.join("postgresql.crt"), dot.join("postgresql.key")))
    );
    assert_eq!(
        settings("host=h sslcertmode=disable", &[("HOME", &h)])
            .unwrap()
            .tls
            .client,
        None
    );
    let s = settings(
        "host=h sslmode=disable sslrootcert=/no/such/ca.crt",
        &[("HOME", &h)],
    );
    assert_eq!(
        (s.as_ref().unwrap().tls.root.clone(), s.unwrap().tls.client),
        (RootCert::None, None)
    );
    let e = err(settings("host=h sslrootcert=/no/such/ca.crt", &[]));
    assert!(
        e.contains("`sslrootcert` (or PGSSLROOTCERT) does not exist: /no/such/ca.crt"),
        "{e}"
    );
}

#[test]
fn sslmode_rules_that_libpq_enforces() {
    let s = settings("host=h sslrootcert=system", &[]).unwrap();
    assert_eq!(
        (s.tls.mode, s.tls.root),
        (SslMode::VerifyFull, RootCert::System)
    );
    let e = err(settings("host=h sslrootcert=system sslmode=require", &[]));
    assert!(
        e.contains("sslmode `require` is too weak for sslrootcert=system"),
        "{e}"
    );
    let e = err(settings("host=h sslmode=verify-ca", &[]));
    assert!(
        e.contains("sslmode `verify-ca` needs the CA") && e.contains("sslrootcert"),
        "{e}"
    );
    let e = err(settings("host=h", &[("PGSSLNEGOTIATION", "direct")]));
    assert!(
        e.contains("sslnegotiation=direct cannot be used with sslmode `prefer`"),
        "{e}"
    );
    assert!(
        settings("host=h sslmode=require sslnegotiation=direct", &[])
            .unwrap()
            .tls
            .direct
    );
}

#[test]
fn unsupported_settings_are_refused_by_name() {
    for (conninfo, vars, says) in [
        (
            "host=h sslcrl=/x",
            &[][..],
            "`sslcrl` (or PGSSLCRL) is not supported",
        ),
        (
            "host=h",
            &[("PGKRBSRVNAME", "pg")][..],
            "`krbsrvname` (or PGKRBSRVNAME) is not supported",
        ),
        (
            "host=h require_auth=scram-sha-256",
            &[][..],
            "`require_auth` (or PGREQUIREAUTH)",
        ),
        (
            "host=h sslpassword=x",
            &[][..],
            "`sslpassword` is not supported",
        ),
        (
            "host=h replication=database",
            &[][..],
            "`replication` is not supported",
        ),
        (
            "host=h",
            &[("PGCLIENTENCODING", "LATIN1")][..],
            "`client_encoding` (or PGCLIENTENCODING)",
        ),
        (
            "host=h gssencmode=require",
            &[][..],
            "`gssencmode` (or PGGSSENCMODE)",
        ),
    ] {
        let e = err(settings(conninfo, vars));
        assert!(
            e.contains(says) && e.contains("fix: remove"),
            "{conninfo}: {e}"
        );
    }
    assert!(settings(
        "host=h gssencmode=disable client_encoding=UTF8 replication=false",
        &[]
    )
    .is_ok());
}

#[test]
fn the_session_name_puts_hyperswaps_first_and_fits_63_bytes() {
    assert_eq!(session_name("hyperswap apply p", None), "hyperswap apply p");
    assert_eq!(
        session_name("hyperswap apply p", Some("")),
        "hyperswap apply p"
    );
    assert_eq!(
        session_name("hyperswap apply p", Some("billing")),
        "hyperswap apply p (billing)"
    );
    let long = session_name("hyperswap apply plan", Some(&"é".repeat(40)));
    assert!(
        long.len() <= 63 && long.starts_with("hyperswap apply plan (é"),
        "{long}"
    );
    assert_eq!(session_name(&"x".repeat(62), Some("app")), "x".repeat(62));
}

#[test]
fn describe_never_shows_the_password() {
    let vars = env(&[]);
    let c = ConnectOptions::resolve_in(Some("postgres://alice:s3cret@db.example:6543/app"), &vars)
        .unwrap();
    assert_eq!(c.describe(), "alice@db.example:6543/app");
    let c = ConnectOptions::resolve_in(
        Some("host=a,b port=1,2 user=u dbname=d password=s3cret"),
        &vars,
    )
    .unwrap();
    assert_eq!(c.describe(), "u@a:1,b:2/d");
}
