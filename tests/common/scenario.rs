//! The scenario most tests walk: a table moved under a live writer, optionally with a
//! kill -9 in the middle of the backfill, through parity, cutover and rollback, checked
//! after each step by an independent EXCEPT ALL both ways.

use std::path::Path;
use std::time::{Duration, Instant};

use super::writer::SqlWriter;
use super::{except_both_ways, path_str, spawn_binary, TestDb};

pub struct Move<'a> {
    pub db: &'a TestDb,
    pub plan: &'a Path,
    /// `schema.table`, and the names the plan gives the new and the retired table.
    pub table: &'a str,
    pub target: &'a str,
    pub retired: &'a str,
    /// The writer's statements; `{r}` is a random 0..1000.
    pub writes: &'a [&'a str],
    /// Kill `plan apply` once this many rows are copied, then resume.
    pub kill_after_rows: Option<i64>,
}

pub async fn rows_copied(client: &tokio_postgres::Client) -> i64 {
    let exists: bool = client
        .query_one("SELECT to_regclass('hyperswap.ranges') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return 0;
    }
    client
        .query_one(
            "SELECT coalesce(sum(rows_copied), 0)::bigint FROM hyperswap.ranges",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

impl Move<'_> {
    /// Walks the whole path; returns the rows the backfill had copied when it was killed
    /// and in all (both 0 without a kill).
    pub async fn run(&self) -> (i64, i64) {
        let db = self.db;
        let client = db.client().await;
        let plan = path_str(self.plan);
        let writer = SqlWriter::start(&db.url, 2, self.writes, Duration::from_millis(15));
        let mut killed_at = 0;
        if let Some(rows) = self.kill_after_rows {
            let mut child = db
                .command(&["plan", "apply", plan, "--until", "parity", "-q"])
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            while rows_copied(&client).await < rows {
                assert!(Instant::now() < deadline, "the backfill never got going");
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "apply ended before the kill"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            killed_at = rows_copied(&client).await;
        }
        let run = spawn_binary(&db.url, &["plan", "apply", plan, "--until", "parity"])
            .await
            .unwrap()
            .ok();
        assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
        let copied = rows_copied(&client).await;
        assert_eq!(
            db.settled_difference(std::path::Path::new(plan), self.table, self.target)
                .await,
            0,
            "after parity"
        );

        db.hyperswap(&["plan", "apply", plan]).ok();
        assert_eq!(
            except_both_ways(&client, self.table, self.retired).await,
            0,
            "after cutover"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rb = db.hyperswap(&["rollback", plan]).ok();
        assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counts = writer.stop().await;
        assert!(
            counts.errors.is_empty(),
            "writer errors: {:#?}",
            counts.errors
        );
        for (sql, n) in self.writes.iter().zip(&counts.rows) {
            assert!(*n > 0, "the writer never changed a row with: {sql}");
        }
        assert_eq!(
            db.settled_difference(std::path::Path::new(plan), self.table, self.target)
                .await,
            0,
            "after rollback"
        );
        (killed_at, copied)
    }
}
