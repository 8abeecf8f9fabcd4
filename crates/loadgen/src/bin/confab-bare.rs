//! The bare upper bound: `confab-bare --bind 127.0.0.1:9000`. Prints `listening on ADDR`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "confab-bare",
    about = "Minimal WebSocket broadcast server (the benchmark's upper bound)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9000")]
    bind: std::net::SocketAddr,
    /// Runtime threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    rt.enable_all().build()?.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(args.bind)?;
        // A deep backlog: the scenarios open thousands of sockets at once.
        let listener = socket.listen(4096)?;
        println!("listening on {}", listener.local_addr()?);
        loadgen::bare::serve(listener).await?;
        anyhow::Ok(())
    })
}
