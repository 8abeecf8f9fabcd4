//! `confab-loadgen run …` measures one target (Confab or the bare bound) and appends JSON
//! lines; `confab-loadgen report …` turns the lines of a whole run into the Markdown
//! report with Confab / bound ratios; `confab-loadgen persist …` measures message
//! persistence alone (no sockets). `scripts/bench` drives them.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::{persist, prep::Auth, report, run};
use std::io::Write as _;

#[derive(Parser)]
#[command(name = "confab-loadgen", about = "Confab's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios against one target.
    Run(Box<RunArgs>),
    /// Writes the Markdown report from JSON lines.
    Report {
        #[arg(long)]
        input: std::path::PathBuf,
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, default_value = "bare")]
        bound: String,
        #[arg(long, default_value = "serve")]
        serve: String,
        #[arg(long, default_value = "prod")]
        prod: String,
        /// A line describing the machine.
        #[arg(long, default_value = "")]
        machine: String,
        /// `confab-loadgen persist` JSON lines of the same run, for their targets.
        #[arg(long)]
        persist: Option<std::path::PathBuf>,
    },
    /// Measures message persistence alone: posts per second into a fresh database,
    /// one transaction per message versus the group-commit writer.
    Persist {
        /// Append the JSON lines to this file (they also go to stdout).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        opts: persist::PersistOptions,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The target's name in the results (`bare`, `serve`, `prod`).
    #[arg(long)]
    name: String,
    /// A gateway's WebSocket URL; repeat it to spread sockets over several gateways.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// The `Origin` header of the handshake (one of the server's allowed origins).
    #[arg(long)]
    origin: Option<String>,
    /// No users or sessions (the bare bound).
    #[arg(long)]
    bare: bool,
    /// The server's database, where the users and sessions are written.
    #[arg(long, env = "CONFAB_DATABASE_URL")]
    database_url: Option<String>,
    /// The server's secret key, to sign the session cookies.
    #[arg(long, env = "CONFAB_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Sign in over HTTP at this base URL instead (CSRF form; slow, for small counts).
    #[arg(long)]
    http_login: Option<String>,
    /// Server processes to sample for CPU and RSS (repeat).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Spread client sockets over 127.0.0.1 ..= 127.0.0.N.
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Runtime threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Append the JSON lines to this file (they also go to stdout).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[command(flatten)]
    opts: run::Options,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(t) = args.threads {
                rt.worker_threads(t.max(1));
            }
            rt.enable_all().build()?.block_on(run_target(*args))
        }
        Command::Report {
            input,
            out,
            bound,
            serve,
            prod,
            machine,
            persist,
        } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let records = report::parse_lines(&text)?;
            let persist = match persist {
                Some(p) => report::parse_persist_lines(
                    &std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )?,
                None => Vec::new(),
            };
            let extras = report::Extras {
                persist,
                // The report runs from scripts/bench, in the shell that ran the servers.
                nofile_hard: report::nofile_hard_limit(),
            };
            let md = report::markdown(&records, &extras, &bound, &serve, &prod, &machine);
            std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
            println!("{}", report::table(&records));
            Ok(())
        }
        Command::Persist { out, opts } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_persist(out, opts)),
    }
}

async fn run_persist(
    out: Option<std::path::PathBuf>,
    opts: persist::PersistOptions,
) -> anyhow::Result<()> {
    let mut file = match &out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let records = persist::run(&opts, |r| {
        let line = serde_json::to_string(r).unwrap_or_default();
        println!("{line}");
        println!("{}", persist::table_row(r));
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    })
    .await?;
    println!("\n{}", persist::table(&records));
    Ok(())
}

async fn run_target(args: RunArgs) -> anyhow::Result<()> {
    let auth = if args.bare {
        Auth::None
    } else {
        Auth::Db {
            database_url: args
                .database_url
                .context("--database-url (or CONFAB_DATABASE_URL) is needed unless --bare")?,
            secret_key: args
                .secret_key
                .context("--secret-key (or CONFAB_SECRET_KEY) is needed unless --bare")?,
            http_login: args.http_login,
        }
    };
    let target = run::target(
        &args.name,
        &args.urls,
        args.origin,
        auth,
        &args.pids,
        args.sources,
    )
    .await?;
    let mut file = match &args.out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let records = run::run(&target, &args.opts, |r| {
        let line = serde_json::to_string(r).unwrap_or_default();
        println!("{line}");
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    })
    .await?;
    println!("\n{}", report::table(&records));
    Ok(())
}
