//! `autoshares-bff migrate`: applies the embedded migrations and exits.

use crate::config::{DatabaseSettings, Layers, Sources};
use crate::identity::LinkStore;

pub async fn run(sources: Sources) -> anyhow::Result<()> {
    let store = open_store(&sources).await?;
    println!("migrations applied");
    store.close().await;
    Ok(())
}

/// The link store of the configured database, migrated.
pub async fn open_store(sources: &Sources) -> anyhow::Result<LinkStore> {
    let database = DatabaseSettings::read(&Layers::load(sources)?)?;
    let store = LinkStore::connect_lazy(&database.url)?;
    store.migrate().await?;
    Ok(store)
}
