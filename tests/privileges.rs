//! Issue 7, least privilege: the whole path as a role that is no superuser, and
//! `plan validate` naming every missing privilege with the statement that grants it.
//!
//! Roles are cluster-wide, so each test names its own (`hs_priv_<test>_...`), drops them
//! left over from an earlier run first, and drops them again when it passes.
#![cfg(db_tests)]

mod common;

use tokio_postgres::Client;

use common::*;
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig};

/// The URL of `db` for `role` instead of the superuser (trust authentication).
fn url_as(db: &TestDb, role: &str) -> String {
    db.url.replacen("postgres@", &format!("{role}@"), 1)
}

/// Runs `sql` as the superuser in `db`.
async fn admin(db: &TestDb, sql: &str) {
    db.client()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Creates `roles` (each `NAME [OPTIONS]`), dropping them first when an earlier run left
/// them behind (their old test database is dropped by `TestDb::new`).
async fn fresh_roles(db: &TestDb, roles: &[&str]) {
    for r in roles {
        let name = r.split_whitespace().next().unwrap();
        admin(db, &format!("DROP ROLE IF EXISTS {name}")).await;
    }
    for r in roles {
        admin(db, &format!("CREATE ROLE {r}")).await;
    }
}

/// Drops `roles` and everything they own or were granted in `db`.
async fn drop_roles(db: &TestDb, roles: &[&str]) {
    let list = roles.join(", ");
    admin(db, &format!("DROP OWNED BY {list}; DROP ROLE {list}")).await;
}

/// The statements after `fix:` in an error, as printed.
fn printed_fixes(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .skip_while(|l| !l.contains("fix: "))
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with("GRANT") || l.starts_with("ALTER"))
        .collect()
}

/// Waits until no hyperswap session is left in `db`: a run that failed has exited, but
/// its backend may still hold the plan's advisory lock for a moment.
async fn settle(db: &TestDb) {
    wait_for_no_tool_session(&db.client().await).await;
}

/// `owner` (may create in the database and in `public`) with a sample table of `rows`
/// rows it owns, and `app`, an application role that may write it. Returns the owner's
/// URL and a connection as the owner.
async fn owner_and_app(db: &TestDb, owner: &str, app: &str, rows: u64) -> (String, Client) {
    fresh_roles(db, &[&format!("{owner} LOGIN"), &format!("{app} LOGIN")]).await;
    admin(
        db,
        &format!(
            "GRANT CREATE ON DATABASE \"{}\" TO {owner}; GRANT CREATE ON SCHEMA public TO {owner};",
            db.name
        ),
    )
    .await;
    let owner_url = url_as(db, owner);
    let as_owner = connect(&owner_url).await;
    create_sample_table(&as_owner, &QualifiedName::new("public", "metrics"), rows)
        .await
        .unwrap();
    as_owner
        .batch_execute(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON public.metrics TO {app};
             GRANT USAGE ON SEQUENCE public.metrics_id_seq TO {app};"
        ))
        .await
        .unwrap();
    (owner_url, as_owner)
}

async fn relation_owner(db: &TestDb, relation: &str) -> String {
    db.client()
        .await
        .query_one(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = to_regclass($1)",
            &[&relation],
        )
        .await
        .unwrap()
        .get(0)
}

/// (a) The whole path as the table's owner holding only the documented privileges (CREATE
/// on the database and on the table's schema): apply with a live writer through cutover,
/// rollback, apply again, finalize. The writer is an application role of its own, so the
/// copied grants and the copy functions are exercised as the application sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_path_as_the_tables_owner_with_the_documented_privileges() {
    let db = TestDb::new("priv_whole_path").await;
    let (owner, app) = ("hs_priv_path_owner", "hs_priv_path_app");
    let (owner_url, as_owner) = owner_and_app(&db, owner, app, 30_000).await;
    let table = QualifiedName::new("public", "metrics");
    let is_super: bool = as_owner
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!is_super);
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "least",
            "public.metrics",
            "backfill:\n  batch_rows: 500\n  max_batch_rows: 500\n  pause: 5ms\n",
        ),
    );
    run_binary(&owner_url, &["plan", "validate", path_str(&plan)]).ok();

    let writer = spawn_writer(WriterConfig {
        url: url_as(&db, app),
        table: table.clone(),
        connections: 2,
        ops_per_sec: 300,
        mix: OpMix::default(),
        time_updates_cross_days: true,
    });
    wait_for_writes(&writer, 30).await;
    let run = spawn_binary(
        &owner_url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .await
    .unwrap();
    let stats = writer.stop().await;
    let run = run.ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert!(
        stats.inserts > 10
            && stats.updates_time > 10
            && stats.updates_key > 10
            && stats.deletes > 10,
        "too few writes during the backfill: {stats:?}"
    );
    run_binary(&owner_url, &["plan", "apply", path_str(&plan)]).ok();

    let client = db.client().await;
    assert!(is_hypertable(&db.client().await, "metrics").await);
    assert_eq!(relation_owner(&db, "public.metrics").await, owner);
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );
    // The application writes to the hypertable with the grants it had, into a new chunk
    // too (created as the hypertable's owner, with the reverse trigger on it).
    let as_app = connect(&url_as(&db, app)).await;
    as_app
        .batch_execute(
            "INSERT INTO public.metrics (ts, device_id) VALUES (now() - interval '400 days', 1), (now(), 2);
             UPDATE public.metrics SET value = -7 WHERE id = 10;
             DELETE FROM public.metrics WHERE id = 11;",
        )
        .await
        .unwrap();

    let rb = run_binary(&owner_url, &["rollback", path_str(&plan)]).ok();
    assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
    assert!(!is_hypertable(&db.client().await, "metrics").await);
    assert_eq!(
        db.settled_difference_as(&owner_url, &plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    assert_eq!(count(&client, "public.metrics WHERE value = -7").await, 1);

    run_binary(&owner_url, &["plan", "apply", path_str(&plan)]).ok();
    assert!(is_hypertable(&db.client().await, "metrics").await);
    run_binary(
        &owner_url,
        &["finalize", "--yes", "--drop-history", path_str(&plan)],
    )
    .ok();
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'hyperswap')
                  + (SELECT count(*) FROM pg_class WHERE relname LIKE 'metrics_hs_%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "finalize left hyperswap objects behind");
    assert_eq!(relation_owner(&db, "public.metrics").await, owner);
    drop(as_app);
    drop(as_owner);
    drop_roles(&db, &[owner, app]).await;
}

/// (b) `plan validate` (and `plan apply`) as the table's owner without CREATE on its
/// schema: exit 2, the database unchanged, and the GRANT that fixes it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_without_create_on_the_schema_prints_the_grant_and_changes_nothing() {
    let db = TestDb::new("priv_no_schema_create").await;
    let role = "hs_priv_noschema";
    fresh_roles(&db, &[&format!("{role} LOGIN")]).await;
    admin(
        &db,
        &format!(
            "GRANT CREATE ON DATABASE \"{}\" TO {role};
             CREATE TABLE public.metrics (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO public.metrics (ts, v) SELECT now() - g * interval '1 hour', g FROM generate_series(1, 500) g;
             ALTER TABLE public.metrics OWNER TO {role};",
            db.name
        ),
    )
    .await;
    let client = db.client().await;
    let before = fingerprint(&client).await;
    let plan = db.plan("p.yaml", &one_table_plan("noschema", "public.metrics", ""));
    let url = url_as(&db, role);
    for cmd in ["validate", "apply"] {
        let run = run_binary(&url, &["plan", cmd, path_str(&plan)]);
        assert_eq!(run.code, 2, "plan {cmd}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr
                .contains(&format!("GRANT CREATE ON SCHEMA \"public\" TO \"{role}\";")),
            "plan {cmd} does not print the fix:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("lacks 1 privilege(s)"),
            "plan {cmd} reports more than the one missing privilege:\n{}",
            run.stderr
        );
        assert_eq!(
            fingerprint(&client).await,
            before,
            "plan {cmd} changed the database"
        );
    }
    settle(&db).await;
    // Granting exactly that is enough.
    admin(&db, &format!("GRANT CREATE ON SCHEMA public TO {role}")).await;
    run_binary(&url, &["plan", "validate", path_str(&plan)]).ok();
    drop(client);
    drop_roles(&db, &[role]).await;
}

/// (c) A role lacking several privileges gets every one listed in one run, each with its
/// fix; running exactly the printed fixes makes the plan valid, and then the whole plan
/// runs as that role, a member of the table's owner rather than the owner itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_missing_privilege_is_listed_in_one_run_and_its_fixes_suffice() {
    let db = TestDb::new("priv_many_missing").await;
    let (dba, owner) = ("hs_priv_many_dba", "hs_priv_many_owner");
    fresh_roles(&db, &[&format!("{dba} LOGIN"), owner]).await;
    admin(
        &db,
        &format!(
            "CREATE SCHEMA ref;
             CREATE SCHEMA util;
             CREATE SEQUENCE util.batch;
             CREATE TABLE ref.devices (id int PRIMARY KEY);
             INSERT INTO ref.devices SELECT g FROM generate_series(0, 9) g;
             CREATE TABLE public.metrics (id bigserial PRIMARY KEY, ts timestamptz NOT NULL,
                                          device int REFERENCES ref.devices, v int,
                                          batch bigint DEFAULT nextval('util.batch'));
             INSERT INTO public.metrics (ts, device, v)
                 SELECT now() - g * interval '1 hour', g % 10, g FROM generate_series(1, 500) g;
             CREATE VIEW public.recent AS SELECT id, ts FROM public.metrics;
             ALTER TABLE public.metrics OWNER TO {owner};
             GRANT SELECT ON public.recent TO {owner};"
        ),
    )
    .await;
    let client = db.client().await;
    let before = fingerprint(&client).await;
    let plan = db.plan("p.yaml", &one_table_plan("many", "public.metrics", ""));
    let url = url_as(&db, dba);
    let run = run_binary(&url, &["plan", "validate", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let expected = [
        format!("GRANT CREATE ON DATABASE \"{}\" TO \"{dba}\";", db.name),
        format!("GRANT CREATE ON SCHEMA \"public\" TO \"{dba}\";"),
        format!("GRANT \"{owner}\" TO \"{dba}\";"),
        format!("GRANT CREATE ON SCHEMA \"public\" TO \"{owner}\";"),
        format!("GRANT USAGE ON SCHEMA \"ref\" TO \"{dba}\";"),
        format!("GRANT REFERENCES ON TABLE \"ref\".\"devices\" TO \"{dba}\";"),
        format!("GRANT USAGE ON SCHEMA \"util\" TO \"{dba}\";"),
        format!("ALTER VIEW \"public\".\"recent\" OWNER TO \"{dba}\";"),
    ];
    for fix in &expected {
        assert!(
            run.stderr.contains(fix.as_str()),
            "missing `{fix}` in:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr
            .contains(&format!("lacks {} privilege(s)", expected.len())),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&client).await, before);

    // The printed fix lines, run as printed by the superuser, are all it takes.
    let fixes = printed_fixes(&run.stderr);
    assert_eq!(fixes.len(), expected.len(), "{}", run.stderr);
    for fix in &fixes {
        admin(&db, fix).await;
    }
    run_binary(&url, &["plan", "validate", path_str(&plan)]).ok();
    run_binary(&url, &["plan", "apply", path_str(&plan)]).ok();
    assert!(is_hypertable(&db.client().await, "metrics").await);
    assert_eq!(relation_owner(&db, "public.metrics").await, owner);
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );
    run_binary(&url, &["finalize", "--yes", path_str(&plan)]).ok();
    drop(client);
    drop_roles(&db, &[dba, owner]).await;
}

/// `finalize` and `rollback` check their own needs before changing anything, and `plan
/// validate` after cutover checks theirs: a role that is not the owner is refused up
/// front, and the plan stays where it was; validate's fixes let it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_finalize_refuse_up_front_without_ownership() {
    let db = TestDb::new("priv_removal").await;
    let other = "hs_priv_removal_other";
    fresh_roles(&db, &[&format!("{other} LOGIN")]).await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 2_000)
        .await
        .unwrap();
    let plan = db.plan("p.yaml", &one_table_plan("removal", "public.metrics", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    // Enough to reach the journal and read the tables, not to own anything (a role
    // that may write the journal without owning it makes the journal untrusted:
    // regressions.rs, a_journal_others_may_write_is_not_trusted).
    admin(
        &db,
        &format!(
            "GRANT USAGE ON SCHEMA hyperswap TO {other};
             GRANT SELECT ON ALL TABLES IN SCHEMA hyperswap TO {other};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {other};"
        ),
    )
    .await;
    let before = fingerprint(&client).await;
    let url = url_as(&db, other);
    for cmd in [
        &["rollback"][..],
        &["finalize", "--yes"],
        &["plan", "validate"],
    ] {
        let args: Vec<&str> = cmd.iter().copied().chain([path_str(&plan)]).collect();
        let run = run_binary(&url, &args);
        assert_eq!(run.code, 2, "{cmd:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr
                .contains("ALTER TABLE \"public\".\"metrics\" OWNER TO")
                && run.stderr.contains("ALTER SCHEMA \"hyperswap\" OWNER TO"),
            "{cmd:?}: {}",
            run.stderr
        );
        assert_eq!(
            fingerprint(&client).await,
            before,
            "{cmd:?} changed the database"
        );
    }
    settle(&db).await;
    let phase: String = client
        .query_one("SELECT phase FROM hyperswap.plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(phase, "cut_over");
    // What `plan validate` printed after cutover, run as printed, lets the role roll
    // back. The copy functions are not given away (they copy with their owner's
    // privileges): dropping them stays with the superuser that created them.
    let run = run_binary(&url, &["plan", "validate", path_str(&plan)]);
    for fix in printed_fixes(&run.stderr) {
        admin(&db, fix).await;
    }
    let run = run_binary(&url, &["plan", "validate", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("lacks 1 privilege(s)")
            && run
                .stderr
                .contains("-- run this command as \"postgres\", which created the copy functions"),
        "{}",
        run.stderr
    );
    let rb = run_binary(&url, &["rollback", path_str(&plan)]).ok();
    assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
    // The application's writes still reach the hypertable through the copy functions.
    client
        .batch_execute("UPDATE public.metrics SET value = -1 WHERE id = 5")
        .await
        .unwrap();
    assert_eq!(
        db.settled_difference_as(&url, &plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    // The role now owns the journal: a superuser does not take it on trust (issue 9)
    // until it is handed back, as the refusal says.
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ALTER SCHEMA \"hyperswap\" OWNER TO \"postgres\""),
        "{}",
        run.stderr
    );
    admin(
        &db,
        "ALTER SCHEMA hyperswap OWNER TO postgres;
         DO $$ DECLARE t record; BEGIN
           FOR t IN SELECT c.oid::regclass AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'hyperswap' AND c.relkind = 'r' LOOP
             EXECUTE format('ALTER TABLE %s OWNER TO postgres', t.r);
           END LOOP; END $$;",
    )
    .await;
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    db.hyperswap(&["finalize", "--yes", "--drop-history", path_str(&plan)])
        .ok();
    assert_eq!(
        count(&client, "pg_namespace WHERE nspname = 'hyperswap'").await,
        0
    );
    drop(client);
    drop_roles(&db, &[other]).await;
}

/// Without CREATE on the database, a journal schema an admin created for the role does:
/// `plan apply` uses it as it is rather than asking for CREATE on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_schema_created_for_the_role_replaces_create_on_the_database() {
    let db = TestDb::new("priv_given_journal").await;
    let role = "hs_priv_given_journal";
    fresh_roles(&db, &[&format!("{role} LOGIN")]).await;
    admin(
        &db,
        &format!(
            "GRANT CREATE ON SCHEMA public TO {role};
             CREATE TABLE public.metrics (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO public.metrics (ts, v) SELECT now() - g * interval '1 hour', g FROM generate_series(1, 500) g;
             ALTER TABLE public.metrics OWNER TO {role};"
        ),
    )
    .await;
    let plan = db.plan("p.yaml", &one_table_plan("given", "public.metrics", ""));
    let url = url_as(&db, role);
    let run = run_binary(&url, &["plan", "validate", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{role}\";",
            db.name
        )) && run.stderr.contains(&format!(
            "CREATE SCHEMA \"hyperswap\" AUTHORIZATION \"{role}\""
        )),
        "{}",
        run.stderr
    );
    admin(
        &db,
        &format!("CREATE SCHEMA hyperswap AUTHORIZATION {role}"),
    )
    .await;
    run_binary(
        &url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .ok();
    run_binary(&url, &["abort", path_str(&plan)]).ok();
    let client = db.client().await;
    assert_eq!(
        count(&client, "pg_namespace WHERE nspname = 'hyperswap'").await,
        0
    );
    assert_eq!(count(&client, "public.metrics").await, 500);
    drop(client);
    drop_roles(&db, &[role]).await;
}

/// A journal another role created (for its own plan) is no place for this role's plan
/// until it may act as that role: the refusal says whose it is and what to grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_roles_journal_is_refused_with_the_grant_that_opens_it() {
    let db = TestDb::new("priv_other_journal").await;
    let (first, second) = ("hs_priv_journal_first", "hs_priv_journal_second");
    fresh_roles(
        &db,
        &[&format!("{first} LOGIN"), &format!("{second} LOGIN")],
    )
    .await;
    for (role, table) in [(first, "one"), (second, "two")] {
        admin(
            &db,
            &format!(
                "GRANT CREATE ON DATABASE \"{db}\" TO {role}; GRANT CREATE ON SCHEMA public TO {role};
                 CREATE TABLE public.{table} (id bigserial PRIMARY KEY, ts timestamptz NOT NULL);
                 INSERT INTO public.{table} (ts) SELECT now() - g * interval '1 hour' FROM generate_series(1, 200) g;
                 ALTER TABLE public.{table} OWNER TO {role};",
                db = db.name
            ),
        )
        .await;
    }
    let one = db.plan("one.yaml", &one_table_plan("one", "public.one", ""));
    let two = db.plan("two.yaml", &one_table_plan("two", "public.two", ""));
    run_binary(
        &url_as(&db, first),
        &["plan", "apply", path_str(&one), "--until", "target"],
    )
    .ok();
    let client = db.client().await;
    let before = fingerprint(&client).await;
    let url = url_as(&db, second);
    for cmd in ["validate", "apply"] {
        let run = run_binary(&url, &["plan", cmd, path_str(&two)]);
        assert_eq!(run.code, 2, "plan {cmd}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("GRANT \"{first}\" TO \"{second}\";")),
            "plan {cmd}: {}",
            run.stderr
        );
        assert_eq!(
            fingerprint(&client).await,
            before,
            "plan {cmd} changed the database"
        );
    }
    settle(&db).await;
    admin(&db, &format!("GRANT {first} TO {second}")).await;
    // Through the copy triggers (the journal's owner grants USAGE on it to the table's
    // owner through the second role's membership) and a backfill creating chunks.
    run_binary(
        &url,
        &["plan", "apply", path_str(&two), "--until", "parity"],
    )
    .ok();
    assert_eq!(
        db.settled_difference_as(&url, &two, "public.two", "public.two_hs_new")
            .await,
        0
    );
    run_binary(&url, &["abort", path_str(&two)]).ok();
    run_binary(&url_as(&db, first), &["abort", path_str(&one)]).ok();
    assert_eq!(
        count(&client, "pg_namespace WHERE nspname = 'hyperswap'").await,
        0
    );
    drop(client);
    drop_roles(&db, &[first, second]).await;
}

/// Regression: a table that forces row-level security on its owner. Its owner, no
/// superuser, would copy and compare only the rows the policies show it, and parity
/// would pass; the plan is refused until the role bypasses RLS or the table stops forcing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_security_forced_on_the_owner_is_refused_until_it_cannot_hide_rows() {
    let db = TestDb::new("priv_forced_rls").await;
    let role = "hs_priv_forced_rls";
    fresh_roles(&db, &[&format!("{role} LOGIN")]).await;
    admin(
        &db,
        &format!(
            "GRANT CREATE ON DATABASE \"{}\" TO {role}; GRANT CREATE ON SCHEMA public TO {role};",
            db.name
        ),
    )
    .await;
    let url = url_as(&db, role);
    let as_owner = connect(&url).await;
    as_owner
        .batch_execute(
            "CREATE TABLE public.metrics (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO public.metrics (ts, v) SELECT now() - g * interval '1 hour', g FROM generate_series(1, 1000) g;
             CREATE POLICY even ON public.metrics USING (v % 2 = 0);
             ALTER TABLE public.metrics ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;",
        )
        .await
        .unwrap();
    let client = db.client().await;
    let before = fingerprint(&client).await;
    let plan = db.plan("p.yaml", &one_table_plan("rls", "public.metrics", ""));
    for cmd in ["validate", "apply"] {
        let run = run_binary(&url, &["plan", cmd, path_str(&plan)]);
        assert_eq!(run.code, 2, "plan {cmd}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("ALTER ROLE \"{role}\" BYPASSRLS;"))
                && run
                    .stderr
                    .contains("ALTER TABLE \"public\".\"metrics\" NO FORCE ROW LEVEL SECURITY;"),
            "plan {cmd}: {}",
            run.stderr
        );
        assert_eq!(
            fingerprint(&client).await,
            before,
            "plan {cmd} changed the database"
        );
    }
    settle(&db).await;
    as_owner
        .batch_execute("ALTER TABLE public.metrics NO FORCE ROW LEVEL SECURITY")
        .await
        .unwrap();
    run_binary(
        &url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .ok();
    assert_eq!(count(&client, "public.metrics_hs_new").await, 1000);
    assert_eq!(
        db.settled_difference_as(&url, &plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    run_binary(&url, &["abort", path_str(&plan)]).ok();
    drop(as_owner);
    drop(client);
    drop_roles(&db, &[role]).await;
}

/// Issue 8: where the tool runs as a role that may not create an event trigger, an
/// ALTER TABLE of the source under migration must not break the application's writes.
/// A rename or an added column is let through (the copy reads the statement's rows by
/// position), parity and cutover refuse until the columns agree again; a dropped column
/// or a changed type is refused by the database itself (a view of the tool's reads
/// every column of both tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_without_superuser_never_breaks_the_applications_writes() {
    let db = TestDb::new("priv_ddl").await;
    let (owner, app) = ("hs_priv_ddl_owner", "hs_priv_ddl_app");
    let (owner_url, as_owner) = owner_and_app(&db, owner, app, 5_000).await;
    let plan = db.plan("p.yaml", &one_table_plan("ddl", "public.metrics", ""));
    run_binary(
        &owner_url,
        &["plan", "apply", path_str(&plan), "--until", "backfill"],
    )
    .ok();
    let as_app = connect(&url_as(&db, app)).await;

    as_owner
        .batch_execute("ALTER TABLE public.metrics RENAME COLUMN status TO state")
        .await
        .expect("no event trigger for this role: the rename goes through");
    as_app
        .batch_execute(
            "INSERT INTO public.metrics (ts, device_id, value, state) VALUES ('2026-01-01', 1, 1.5, 'renamed');
             UPDATE public.metrics SET state = 'u', value = 2 WHERE id = 10;
             UPDATE public.metrics SET id = 900000 WHERE id = 11;
             DELETE FROM public.metrics WHERE id = 12;",
        )
        .await
        .expect("the application's writes keep working after a RENAME COLUMN");
    as_owner
        .batch_execute("ALTER TABLE public.metrics ADD COLUMN extra int")
        .await
        .unwrap();
    as_app
        .batch_execute(
            "INSERT INTO public.metrics (ts, device_id, state, extra) VALUES ('2026-01-02', 2, 'added', 7);
             UPDATE public.metrics SET extra = 1, value = 3 WHERE id = 20;",
        )
        .await
        .expect("the application's writes keep working after an ADD COLUMN");
    for ddl in [
        "ALTER TABLE public.metrics DROP COLUMN value",
        "ALTER TABLE public.metrics ALTER COLUMN device_id TYPE bigint",
        "ALTER TABLE public.metrics_hs_new DROP COLUMN value",
    ] {
        let e = as_owner.batch_execute(ddl).await.unwrap_err();
        let msg = format!("{:?}", e.as_db_error().unwrap());
        assert!(msg.contains("hyperswap"), "{ddl}: {msg}");
    }
    // The view that pins the columns shows nothing, whoever reads it.
    let admin = db.client().await;
    let oid: u32 = admin
        .query_one("SELECT 'public.metrics'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    let pinned: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM hyperswap.columns_{oid}"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pinned, 0);
    // Parity and cutover refuse while the columns differ, and say why.
    let run = run_binary(&owner_url, &["parity", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("differ"), "{}", run.stderr);
    let run = run_binary(&owner_url, &["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(!is_hypertable(&db.client().await, "metrics").await);

    // The DBA undoes the change: every write made meanwhile is in the copy.
    as_owner
        .batch_execute(
            "ALTER TABLE public.metrics RENAME COLUMN state TO status;
             ALTER TABLE public.metrics DROP COLUMN extra;",
        )
        .await
        .unwrap();
    let client = db.client().await;
    assert_eq!(
        db.settled_difference_as(&owner_url, &plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    let run = run_binary(&owner_url, &["plan", "apply", path_str(&plan)]).ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert!(is_hypertable(&db.client().await, "metrics").await);
    run_binary(
        &owner_url,
        &["finalize", "--yes", "--drop-history", path_str(&plan)],
    )
    .ok();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'metrics_hs_%' OR relnamespace = to_regnamespace('hyperswap')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "finalize left objects behind");
    drop(as_app);
    drop(as_owner);
    drop_roles(&db, &[owner, app]).await;
}
