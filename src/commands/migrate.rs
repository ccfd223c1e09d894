//! `autoshares-bff migrate`: applies the embedded migrations, through
//! `database.migration_url` when set, and exits.

use crate::config::{DatabaseSettings, Layers, Sources};
use crate::identity::LinkStore;

pub async fn run(sources: Sources) -> anyhow::Result<()> {
    apply(&DatabaseSettings::read(&Layers::load(&sources)?)?).await?;
    println!("migrations applied");
    Ok(())
}

/// The link store of the configured database, migrated.
pub async fn open_store(sources: &Sources) -> anyhow::Result<LinkStore> {
    let database = DatabaseSettings::read(&Layers::load(sources)?)?;
    apply(&database).await?;
    Ok(LinkStore::connect_lazy(&database.url)?)
}

async fn apply(database: &DatabaseSettings) -> anyhow::Result<()> {
    let store = LinkStore::connect_lazy(database.migration_url())?;
    let applied = store.migrate().await;
    store.close().await;
    Ok(applied?)
}
