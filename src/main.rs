//! The `querygate` binary: parse the configuration, start logging, serve.

use std::process::ExitCode;

use clap::Parser;
use querygate::config::{Cli, Command, KeygenArgs};
use querygate::token::keys;
use querygate::{AppState, Config, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Command::Keygen(args)) => return keygen(&args),
        Some(Command::Serve(config)) => config,
        None => cli.serve,
    };
    match runtime(config.worker_threads) {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(error) => {
            eprintln!("querygate cannot start its runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime: tokio's single-threaded scheduler for one thread (less
/// work per request than one worker of the multi-threaded scheduler), the
/// multi-threaded one for more.
fn runtime(threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    );
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

async fn serve(config: Config) -> ExitCode {
    telemetry::init(config.log_format());
    let file_limit = querygate::server::raise_file_limit();
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(
        file_limit,
        threads,
        "open-file limit and threads serving requests"
    );
    let (host, why) = config.listen_host();
    let address = std::net::SocketAddr::new(host, config.port);
    let state = match AppState::build(config).await {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "querygate cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %address, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(local) => {
            tracing::info!(address = %local, reason = why, instance = state.lifecycle.instance(), "querygate listening on http://{local}")
        }
        Err(error) => tracing::warn!(%error, "listening, address unknown"),
    }
    if let Err(error) = querygate::run(listener, state, shutdown_signal()).await {
        tracing::error!(%error, "server failed");
        return ExitCode::FAILURE;
    }
    tracing::info!("querygate stopped");
    ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM (what Render and most orchestrators send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}

fn keygen(args: &KeygenArgs) -> ExitCode {
    let kid = args.kid.clone().unwrap_or_else(keys::default_kid);
    if let Err(error) = keys::validate_kid(&kid) {
        eprintln!("querygate keygen: {error}");
        return ExitCode::FAILURE;
    }
    if args.print {
        let secret = keys::generate_secret();
        // The operator asked for the secret on standard output.
        #[expect(
            clippy::print_stdout,
            reason = "keygen --print writes the key for the operator"
        )]
        {
            println!("{kid}:{}", secret.expose());
        }
        return ExitCode::SUCCESS;
    }
    match keys::write_key_file(&args.keys_dir, &kid) {
        Ok(path) => {
            eprintln!(
                "wrote key version {kid} to {} (mode 0600); it becomes active on the next start \
                 unless QUERYGATE_ACTIVE_KID names another",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("querygate keygen: {error}");
            ExitCode::FAILURE
        }
    }
}
