//! `latchkey serve [--demo]`.

use latchkey_core::{Settings, SystemClock};
use std::sync::Arc;

use super::common::{Fail, master_key, runtime};
use crate::server;

pub(super) async fn serve(settings: Settings, demo: bool) -> Result<(), Fail> {
    let master = master_key(&settings)?;
    let bind = settings.bind.clone();
    let listener = server::bind(&bind).await?;
    let state = server::build_state(settings, Arc::new(SystemClock), master).await?;
    let demo_info = if demo { Some(crate::demo::setup(&state).await.map_err(runtime)?) } else { None };
    let srv = server::Server::spawn_with(state, listener, demo_info.as_ref())?;
    if let Some(info) = &demo_info {
        print_demo(&srv.state.settings, info);
    }
    match srv.metrics_addr {
        Some(m) => {
            tracing::info!(addr = %srv.addr, metrics = %m, issuer = %srv.state.settings.issuer, "latchkey is serving")
        }
        None => tracing::info!(addr = %srv.addr, issuer = %srv.state.settings.issuer, "latchkey is serving"),
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    srv.shutdown().await;
    Ok(())
}

fn print_demo(settings: &Settings, info: &crate::demo::DemoInfo) {
    println!();
    println!("  Latchkey demo is ready: open {}", settings.endpoint("/demo"));
    println!("  username: {}", crate::demo::DEMO_USERNAME);
    match &info.new_password {
        Some(p) => println!(
            "  password: {p}   (shown this once; change it with `latchkey user set-password demo --password-stdin`)"
        ),
        None => println!("  password: as printed when the demo user was created"),
    }
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
