//! `autoshares-bff serve`: the service with the configuration of docs/configuration.md.

use crate::config::{Settings, Sources};
use crate::startup::{self, Listeners};
use crate::telemetry;

pub async fn run(sources: Sources) -> anyhow::Result<()> {
    let settings = Settings::load(&sources)?;
    let telemetry = telemetry::init(&settings.log, Some(&settings.telemetry));
    let listeners = Listeners::bind(&settings.server.listen, &settings.server.admin_listen)?;
    let app = startup::build(settings, listeners).await?;
    tracing::info!(
        public = %app.public_addr(),
        admin = %app.admin_addr(),
        workers = app.workers(),
        "serving"
    );
    let outcome = app.run_until(startup::termination_signal()).await;
    telemetry.shutdown();
    outcome
}
