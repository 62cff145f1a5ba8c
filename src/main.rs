//! The `hyperswap` binary: parse the command line, call the library, render the result,
//! and exit with the code `--help` documents (see [`EXIT_CODES`]).

mod bars;
mod render;

/// Writes to stdout; when the reader has gone (`hyperswap plan show | head`), stops
/// quietly as a Unix tool does instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { write_stdout(&format!($($arg)*)) };
}
macro_rules! outln {
    ($($arg:tt)*) => { write_stdout(&format!("{}\n", format!($($arg)*))) };
}

fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use hyperswap::commands;
use hyperswap::conn::ConnectOptions;
use hyperswap::context::Context;
use hyperswap::model::Removal;
use hyperswap::phase::Until;
use hyperswap::plan::Plan;
use hyperswap::progress::{Cancel, NoProgress, Progress};
use hyperswap::stmt::SqlLog;
use hyperswap::Error;

/// The exit codes, for scripts; each has a test.
const EXIT_CODES: &str = "Exit codes:
  0    done; parity equal
  1    parity found differences (cutover refused)
  2    the plan, the command or the database does not fit: fix what the message says
  3    retry later: another hyperswap runs the plan, locks not taken, outside the
       cutover window, a throttle's abort limit; nothing was changed
  4    the connection failed or was lost: run the same command again (it resumes)
  130  interrupted (Ctrl-C) at a safe point: run the same command again to resume";

#[derive(Parser)]
#[command(
    name = "hyperswap",
    version,
    about = "Move a live PostgreSQL table into a TimescaleDB hypertable with zero downtime",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Database URL or libpq key=value string, e.g.
    /// postgres://user@host:5432/db?sslmode=verify-full; completed from PGSERVICE and the
    /// PG* variables as libpq does. Keep the password out of it and out of the environment: in ~/.pgpass (or PGPASSFILE).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Append every statement run against your tables to FILE (an audit trail).
    #[arg(long, global = true, value_name = "FILE")]
    sql_log: Option<PathBuf>,
    /// No progress bars, warnings and errors only.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More log: -v adds every statement as it runs (debug), -vv everything (trace).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as text (default) or as JSON objects, one per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: bars::LogFormat,
    /// When stderr is not a terminal (nohup, cron, CI): log a progress line this often
    /// instead of drawing bars (`0s`: never).
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    progress_every: std::time::Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a plan file.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man,
    /// Where each plan stands: phase, rows copied, rows total, rate.
    Status {
        /// Only this plan (default: every plan in the database's journal).
        plan: Option<PathBuf>,
        /// Print a JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Print again every DURATION (e.g. `5s`) until Ctrl-C.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        watch: Option<std::time::Duration>,
    },
    /// Compare the live table and its mirror now (exit 1 on any difference).
    Parity {
        plan: PathBuf,
        /// Print the report as a JSON document (see the README) instead of text.
        #[arg(long)]
        json: bool,
        /// Re-copy the differing keys from the live table to its mirror, then check again.
        #[arg(long)]
        repair: bool,
    },
    /// After cutover, make the original tables live again, keeping every write.
    Rollback { plan: PathBuf },
    /// Before cutover (or after a rollback): remove the copy triggers and the new tables,
    /// leaving the source as it was, and forget the plan.
    Abort { plan: PathBuf },
    /// After cutover: remove the reverse triggers and the retired tables, and forget the plan.
    /// Foreign keys emulated by triggers (`inbound_foreign_keys: emulate`) stay emulated.
    Finalize {
        plan: PathBuf,
        /// Go ahead without asking: finalize drops the retired tables, and with them the
        /// way back. Required when not run from a terminal; on one, hyperswap asks for
        /// the plan's name.
        #[arg(long)]
        yes: bool,
        /// Also (or, after finalize, only) end the plan's foreign-key emulation: drop its
        /// triggers and functions; the referencing tables are then checked by nothing.
        #[arg(long)]
        end_fk_emulation: bool,
        /// Also (or, after finalize, only) drop the plan's events from the journal (kept
        /// by default, with a last `finalized` event, in `hyperswap.events`); the
        /// journal goes with the last of them.
        #[arg(long)]
        drop_history: bool,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Parse the plan and check it against the live database. Changes nothing.
    Validate {
        plan: PathBuf,
        /// Print a JSON document: `valid`, every problem with its fix, the tables.
        #[arg(long)]
        json: bool,
    },
    /// Print the exact SQL each phase will run. Changes nothing.
    Show { plan: PathBuf },
    /// Run or resume the plan, by default through cutover.
    Apply {
        plan: PathBuf,
        /// Stop after this step.
        #[arg(long, value_enum, default_value = "cutover")]
        until: Until,
        /// Backfill sessions, in place of the plan's `backfill.workers` (a resumed run
        /// may use another count).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        workers: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bars = bars::Bars::new(cli.quiet, cli.progress_every);
    bars::init_tracing(&bars, cli.quiet, cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli, &bars)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            bars.clear();
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli, bars: &bars::Bars) -> Result<u8, Error> {
    let log = match &cli.sql_log {
        Some(path) => SqlLog::to_file(path)?,
        None => SqlLog::default(),
    };
    let connect = ConnectOptions::resolve(cli.database_url.as_deref())?;
    match cli.command {
        // Generated from the command line's own definition, for packages.
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hyperswap", &mut out);
            out!("{}", String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| {
                    Error::invalid(format!("cannot render the man page: {e}"), "report this")
                })?;
            out!("{}", String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Plan(PlanCommand::Validate { plan: path, json }) => {
            let checked = async {
                let plan = Plan::load(&path)?;
                let cx = context(&connect, &plan, &log, Cancel::default(), &NoProgress);
                let jobs = commands::validate::validate(&cx).await?;
                Ok::<_, Error>((plan, jobs))
            }
            .await;
            if !json {
                let (plan, jobs) = checked?;
                outln!("{}", render::validated(&plan, &jobs, &connect));
                return Ok(0);
            }
            let (doc, code) = render::validated_json(&path, &checked);
            outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
            Ok(code)
        }
        Command::Plan(PlanCommand::Show { plan }) => {
            let plan = Plan::load(&plan)?;
            let client = connect.connect("hyperswap show").await?;
            out!("{}", commands::show::show(&client, &plan).await?);
            Ok(0)
        }
        Command::Plan(PlanCommand::Apply {
            plan,
            until,
            workers,
        }) => {
            let plan = Plan::load(&plan)?;
            let cancel = Cancel::default();
            watch_ctrl_c(cancel.clone());
            tracing::info!("applying plan `{}` on {}", plan.name, connect.describe());
            let cx = context(&connect, &plan, &log, cancel, bars);
            let outcome = commands::apply::apply(&cx, until, workers).await?;
            bars.clear();
            if let Some(report) = &outcome.parity {
                outln!("{}", render::parity(report));
                if !report.equal {
                    eprintln!(
                        "error: parity found differences; cutover refused. Inspect them with `hyperswap parity {0}`, re-copy the differing rows from the live table with `hyperswap parity {0} --repair`, then run `hyperswap plan apply {0}` again; the copy trigger keeps running, nothing was lost",
                        plan.path.display()
                    );
                    return Ok(1);
                }
            }
            outln!(
                "plan `{}`: {}",
                plan.name,
                render::phase_sentence(outcome.phase)
            );
            Ok(0)
        }
        Command::Status { plan, json, watch } => {
            let plan = plan.map(|p| Plan::load(&p)).transpose()?;
            let client = connect.connect("hyperswap status").await?;
            let cancel = Cancel::default();
            if watch.is_some() {
                watch_ctrl_c(cancel.clone());
            }
            let only = plan.as_ref().map(|p| p.name.as_str());
            loop {
                let list = commands::status::status(&client, only).await?;
                if json {
                    outln!(
                        "{}",
                        serde_json::to_string(&list).expect("status serialises")
                    );
                } else {
                    if watch.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        // Clear the screen and home the cursor, as watch(1) does.
                        out!("\x1b[2J\x1b[H");
                    }
                    outln!("{}", render::status(&list, only));
                }
                let Some(every) = watch else { break };
                let until = std::time::Instant::now() + every;
                while std::time::Instant::now() < until {
                    if cancel.is_cancelled() {
                        return Ok(0);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            Ok(0)
        }
        Command::Parity { plan, json, repair } => {
            let plan = Plan::load(&plan)?;
            let cancel = Cancel::default();
            watch_ctrl_c(cancel.clone());
            let cx = context(&connect, &plan, &log, cancel, bars);
            let report = commands::parity::parity(&cx, repair).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                );
            } else {
                outln!("{}", render::parity(&report));
            }
            Ok(if report.equal { 0 } else { 1 })
        }
        Command::Abort { plan } => remove(Removal::Abort, &connect, &plan, &log, false).await,
        Command::Finalize {
            plan,
            end_fk_emulation: false,
            yes,
            drop_history,
        } => {
            if drop_history {
                // After a finalize that kept the plan's events, only they are left.
                let loaded = Plan::load(&plan)?;
                let cx = context(&connect, &loaded, &log, Cancel::default(), &NoProgress);
                if let Some(n) = commands::remove::drop_history(&cx).await? {
                    outln!(
                        "plan `{}`: already finalized; {n} event(s) dropped from the journal",
                        loaded.name
                    );
                    return Ok(0);
                }
            }
            confirm_finalize(&plan, yes)?;
            remove(Removal::Finalize, &connect, &plan, &log, !drop_history).await
        }
        Command::Finalize {
            plan,
            end_fk_emulation: true,
            yes,
            drop_history,
        } => {
            confirm_finalize(&plan, yes)?;
            let plan = Plan::load(&plan)?;
            let cancel = Cancel::default();
            watch_ctrl_c(cancel.clone());
            let cx = context(&connect, &plan, &log, cancel, &NoProgress);
            let ended = commands::remove::end_fk_emulation(&cx, !drop_history).await?;
            outln!(
                "plan `{}`: finalized; foreign-key emulation ended ({} function(s) and their triggers dropped): nothing checks those references any more",
                plan.name,
                ended.len()
            );
            Ok(0)
        }
        Command::Rollback { plan } => {
            let plan = Plan::load(&plan)?;
            // Ctrl-C is not watched: the rollback is one transaction, and its parity
            // check after it is only a report.
            let cx = context(&connect, &plan, &log, Cancel::default(), &NoProgress);
            let report = commands::rollback::rollback(&cx).await?;
            outln!(
                "plan `{}`: rolled back; the original tables are live again",
                plan.name
            );
            outln!("{}", render::parity(&report));
            Ok(if report.equal { 0 } else { 1 })
        }
    }
}

/// The run context of a command on `plan`.
fn context<'a>(
    connect: &'a ConnectOptions,
    plan: &'a Plan,
    log: &'a SqlLog,
    cancel: Cancel,
    progress: &'a dyn Progress,
) -> Context<'a> {
    Context::new(connect, plan, log, cancel, progress)
}

/// Finalize cannot be undone: without `--yes`, a terminal is asked for the plan's name
/// and anything else is refused.
fn confirm_finalize(path: &std::path::Path, yes: bool) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    let plan = Plan::load(path)?;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::invalid(
            format!(
                "finalize of plan `{}` drops the retired table(s) and with them the way back; not run from a terminal, it needs --yes",
                plan.name
            ),
            format!("run `hyperswap finalize {} --yes`", path.display()),
        ));
    }
    let tables: Vec<String> = plan.tables.iter().map(|t| t.retired.to_string()).collect();
    eprint!(
        "finalize drops {} and the reverse triggers: rollback will no longer be possible.\nType the plan's name ({}) to go on: ",
        tables.join(", "),
        plan.name
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).map_err(|e| {
        Error::invalid(
            format!("cannot read the answer: {e}"),
            "run it again, or with --yes",
        )
    })?;
    if answer.trim() != plan.name {
        return Err(Error::invalid(
            "finalize not confirmed; nothing was changed",
            "type the plan's name exactly, or pass --yes",
        ));
    }
    Ok(())
}

async fn remove(
    kind: Removal,
    connect: &ConnectOptions,
    plan: &std::path::Path,
    log: &SqlLog,
    keep_history: bool,
) -> Result<u8, Error> {
    let plan = Plan::load(plan)?;
    let cancel = Cancel::default();
    watch_ctrl_c(cancel.clone());
    let cx = context(connect, &plan, log, cancel, &NoProgress);
    let removed = commands::remove::remove(&cx, kind, keep_history).await?;
    let what = match kind {
        Removal::Abort => {
            "aborted: the copy triggers and the new tables are gone, the source is as it was"
        }
        Removal::Finalize => "finalized: the reverse triggers and the retired tables are gone",
    };
    let journal = if keep_history {
        "the plan is removed from the journal, its events are kept (hyperswap.events; `--drop-history` drops them)"
    } else {
        "the plan is removed from the journal"
    };
    outln!("plan `{}`: {what}; {journal}", plan.name);
    if !removed.fk_emulation.is_empty() {
        outln!(
            "foreign keys to the moved tables stay emulated by triggers ({} function(s) in schema hyperswap), since no real foreign key can reference a hypertable's key without its time column; end it with `hyperswap finalize {} --end-fk-emulation`",
            removed.fk_emulation.len(),
            plan.path.display()
        );
    }
    Ok(0)
}

/// First Ctrl-C: stop at the next safe point. Second: leave at once (the journal keeps
/// the run resumable either way).
fn watch_ctrl_c(cancel: Cancel) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupt received: stopping after the current batch (press Ctrl-C again to stop now)");
            cancel.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("error: interrupted; run the same command again to resume");
            std::process::exit(2);
        }
    });
}
