//! `latchkey-bench`: a load generator for Latchkey. It starts `latchkey serve` itself (a fresh
//! server per scenario, on SQLite in a temporary directory or on a fresh PostgreSQL database),
//! seeds it through the CLI, drives each scenario over `--connections` keep-alive HTTP/1.1
//! connections for `--duration` seconds after a warm-up, and prints one markdown table:
//! requests/s, latency quantiles, errors and the server's peak RSS.
//!
//! ```sh
//! cargo build --release -p latchkey -p latchkey-bench && target/release/latchkey-bench
//! ```

mod client;
mod flow;
mod run;
mod scenarios;
mod server;
mod soak;

use anyhow::{Context, Result, bail};
use clap::Parser;
use clap::builder::PossibleValuesParser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::scenarios::{ALL, Ctx, Row};
use crate::server::Backend;

#[derive(Parser)]
#[command(name = "latchkey-bench", version, about = "Load generator for Latchkey; prints one markdown table")]
struct Args {
    /// The latchkey binary to run [default: `latchkey` next to this executable].
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// Run the servers on PostgreSQL: a fresh database per scenario on this server, dropped
    /// afterwards, named after the URL's database (`postgres://user@host:5432/NAME`).
    /// Default: SQLite in a temporary directory.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Keep-alive connections (one closed-loop worker each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of recorded requests per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unrecorded requests before each scenario's recording.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// A scenario to run (repeatable) [default: all].
    #[arg(long = "scenario", value_name = "NAME", value_parser = PossibleValuesParser::new(ALL))]
    scenarios: Vec<String>,
    /// A quick check for CI: 1 s per scenario on 4 connections; exits non-zero when any
    /// scenario had an error or answered no request.
    #[arg(long)]
    smoke: bool,
    /// A setting for every server, as its environment variable (repeatable), e.g.
    /// `--server-env LATCHKEY_ARGON2__MAX_CONCURRENT=1`.
    #[arg(long = "server-env", value_name = "LATCHKEY_KEY=VALUE")]
    server_env: Vec<String>,
    /// The token traffic of the mixed scenario.
    #[arg(long, value_name = "SCENARIO", default_value = "cc-opaque",
          value_parser = PossibleValuesParser::new(["cc-opaque", "cc-jwt-rs256", "cc-jwt-es256"]))]
    mixed_token: String,
    /// Send this many requests per second (open loop, spread over the connections) instead of
    /// as many as the server answers; latency then counts from when each request was due.
    #[arg(long, value_name = "REQ_PER_S", conflicts_with = "half_peak")]
    rate: Option<f64>,
    /// Run each scenario twice: as fast as possible, then (on a fresh server) at half the rate
    /// it reached, as the row "NAME @ 50%" (the latency targets are at half the peak rate).
    /// Not for login and mixed.
    #[arg(long)]
    half_peak: bool,
    /// Threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Soak mode instead of the scenarios: one server with short lifetimes, a mixed load for
    /// DURATION (`90s`, `30m`, `2h`), a row every --soak-sample seconds, and a non-zero exit
    /// when RSS, fds, database or WAL size or p99 trend upward (or throughput downward) after
    /// the warm-up beyond the tolerances.
    #[arg(long, value_name = "DURATION")]
    soak: Option<String>,
    /// Seconds between two soak rows.
    #[arg(long, default_value_t = 5.0)]
    soak_sample: f64,
    /// Seconds of the soak left out of the trend [default: a third of the soak, at most 300].
    #[arg(long)]
    soak_warmup: Option<f64>,
    /// Percent RSS may grow from the middle to the last third of the soak (plus 4 MiB).
    #[arg(long, default_value_t = 25.0)]
    soak_rss_tolerance: f64,
    /// Percent open file descriptors may grow (plus 4).
    #[arg(long, default_value_t = 25.0)]
    soak_fd_tolerance: f64,
    /// Percent the database (SQLite file; PostgreSQL tables and indexes) may grow (plus 1 MiB).
    #[arg(long, default_value_t = 25.0)]
    soak_db_tolerance: f64,
    /// Percent a sample of the SQLite WAL may exceed the server's bound
    /// (database.sqlite_wal_max_bytes, 32 MiB in the soak unless --server-env sets it).
    #[arg(long, default_value_t = 25.0)]
    soak_wal_tolerance: f64,
    /// Percent p99 may grow (plus 2 ms).
    #[arg(long, default_value_t = 50.0)]
    soak_p99_tolerance: f64,
    /// Percent throughput may fall.
    #[arg(long, default_value_t = 25.0)]
    soak_throughput_tolerance: f64,
    /// Percent of soak requests that may fail.
    #[arg(long, default_value_t = 0.1)]
    soak_max_errors: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads).enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(bench(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("latchkey-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn server_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(p) => p,
        None => {
            let me = std::env::current_exe().context("cannot find this executable's path")?;
            me.with_file_name("latchkey")
        }
    };
    if !bin.is_file() {
        bail!(
            "no latchkey binary at {}: build it in the same profile (`cargo build --release -p latchkey \
             -p latchkey-bench`) or pass --server-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Run the scenarios and print the table; false when the run should fail.
async fn bench(args: Args) -> Result<bool> {
    let bin = server_bin(args.server_bin)?;
    let backend = match args.database_url.as_deref() {
        None | Some("") | Some("sqlite") => Backend::Sqlite,
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Backend::Postgres(url::Url::parse(u).context("--database-url is not a URL")?)
        }
        Some(_) => bail!("--database-url must be a postgres:// URL (SQLite is the default)"),
    };
    let (connections, duration, warmup) =
        if args.smoke { (4, 1.0, 0.3) } else { (args.connections.max(1), args.duration, args.warmup) };
    let in_range = duration > 0.0 && duration <= 3600.0 && (0.0..=600.0).contains(&warmup);
    if !in_range {
        bail!("--duration must be in (0, 3600] and --warmup in [0, 600] seconds");
    }
    let mut server_env = Vec::new();
    for kv in &args.server_env {
        match kv.split_once('=') {
            Some((k, v)) if k.starts_with("LATCHKEY_") => server_env.push((k.to_owned(), v.to_owned())),
            _ => bail!("--server-env takes LATCHKEY_KEY=VALUE, not `{kv}`"),
        }
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r <= 10_000_000.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    let mut ctx = Ctx {
        bin,
        backend,
        server_env,
        mixed_token: args.mixed_token,
        connections,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        rate: args.rate,
    };
    if let Some(d) = args.soak.as_deref() {
        let duration = soak::parse_duration(d).context("--soak")?;
        let sample = args.soak_sample;
        if !(0.5..=3600.0).contains(&sample) {
            bail!("--soak-sample must be between 0.5 and 3600 seconds");
        }
        let warmup = args.soak_warmup.unwrap_or((duration.as_secs_f64() / 3.0).min(300.0));
        if !(warmup >= 0.0 && warmup < duration.as_secs_f64()) {
            bail!("--soak-warmup must be at least 0 and shorter than the soak");
        }
        let tolerances = soak::Tolerances {
            rss: args.soak_rss_tolerance,
            fds: args.soak_fd_tolerance,
            db: args.soak_db_tolerance,
            wal: args.soak_wal_tolerance,
            p99: args.soak_p99_tolerance,
            throughput: args.soak_throughput_tolerance,
            error_ratio: args.soak_max_errors / 100.0,
        };
        let plan = soak::Soak {
            duration,
            sample: Duration::from_secs_f64(sample),
            warmup: Duration::from_secs_f64(warmup),
            tolerances,
        };
        let ok = soak::run(&ctx, &plan).await?;
        if ok {
            eprintln!("latchkey-bench: soak passed: no trend beyond the tolerances");
        }
        return Ok(ok);
    }
    let names: Vec<&str> = if args.scenarios.is_empty() {
        ALL.to_vec()
    } else {
        ALL.iter().copied().filter(|n| args.scenarios.iter().any(|s| s == n)).collect()
    };
    eprintln!(
        "latchkey-bench: {} on {}, {} connections, {warmup} s warm-up + {duration} s per scenario, server {}{}",
        names.join(", "),
        ctx.backend.describe(),
        ctx.connections,
        ctx.bin.display(),
        ctx.server_env.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>()
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for name in &names {
        eprintln!("latchkey-bench: {name} …");
        let mut result = scenarios::run(name, &ctx).await;
        if args.half_peak
            && !matches!(*name, "login" | "mixed")
            && let Ok(peak) = &result
            && let Some(first) = peak.first()
            && first.stats.rate() > 0.0
        {
            let half = first.stats.rate() / 2.0;
            eprintln!("latchkey-bench: {name} at {half:.0} req/s (half its peak) …");
            ctx.rate = Some(half);
            let again = scenarios::run(name, &ctx).await;
            ctx.rate = None;
            result = match (result, again) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b.into_iter().map(|mut r| {
                        r.stats.name = format!("{} @ 50%", r.stats.name);
                        r
                    }));
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        match result {
            Ok(r) => {
                for row in &r {
                    let s = &row.stats;
                    eprintln!(
                        "latchkey-bench:   {}: {} requests, {:.0}/s, {} errors",
                        s.name,
                        s.requests(),
                        s.rate(),
                        s.errors
                    );
                    if let Some(e) = &s.first_error {
                        eprintln!("latchkey-bench:   first error: {e}");
                    }
                }
                rows.extend(r);
            }
            Err(e) => {
                eprintln!("latchkey-bench:   {name} failed: {e:#}");
                failed.push(((*name).to_owned(), format!("{e:#}")));
            }
        }
    }

    println!("| scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | server peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let s = &row.stats;
        let rss = row.rss_mib.map(|m| format!("{m:.0}")).unwrap_or_else(|| "?".into());
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {rss} |",
            s.name,
            s.rate(),
            fmt_ms(s.ms(0.5)),
            fmt_ms(s.ms(0.99)),
            fmt_ms(s.ms(0.999)),
            s.errors
        );
    }
    for (name, _) in &failed {
        println!("| {name} | failed | | | | | |");
    }

    let mut ok = failed.is_empty();
    if args.smoke {
        for row in &rows {
            if row.stats.errors > 0 || row.stats.requests() == 0 {
                eprintln!(
                    "latchkey-bench: smoke: {} had {} errors and {} requests",
                    row.stats.name,
                    row.stats.errors,
                    row.stats.requests()
                );
                ok = false;
            }
        }
        if ok {
            eprintln!("latchkey-bench: smoke pass: every scenario answered without errors");
        }
    }
    Ok(ok)
}

/// Milliseconds with precision that suits the magnitude.
fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}
