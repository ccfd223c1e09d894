//! `autoshares-bff sandbox [--listen ADDR]`: only the stand-in AutoShares.

use std::net::TcpListener;

use anyhow::Context as _;

use crate::config::{Layers, LogSettings, Sources, sandbox_listen};
use crate::sandbox::{self, SandboxConfig};
use crate::{startup, telemetry};

pub async fn run(sources: Sources, listen: Option<String>) -> anyhow::Result<()> {
    let layers = Layers::load(&sources)?;
    let _telemetry = telemetry::init(&LogSettings::read(&layers)?, None);
    let address = match listen {
        Some(address) => address,
        None => sandbox_listen(&layers)?,
    };
    let listener =
        TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
    let config = SandboxConfig::default();
    let (sandbox, server) = sandbox::serve(listener, config.clone())?;
    println!("AutoShares sandbox on {}", sandbox.base_url());
    println!(
        "  Et-App-Key {}  Username {}  Password {}",
        config.app_key, config.username, config.password
    );
    println!("  users {:?}", config.users);
    println!(
        "  last code sent to a number: http://{}/sandbox/sms?phoneNumber=%2B13108904569",
        sandbox.addr()
    );
    tokio::select! {
        result = server => result?,
        () = startup::termination_signal() => sandbox.stop().await,
    }
    Ok(())
}
