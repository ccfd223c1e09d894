//! The link store on both databases it supports.

use autoshares_bff::identity::LinkStore;
use autoshares_bff::ids::AutosharesUserId;
use secrecy::SecretString;

use crate::helpers::TestDatabase;

async fn exercise(database: TestDatabase) {
    let store = LinkStore::connect_lazy(&SecretString::from(database.url.clone())).unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrating twice is harmless");
    store.ping().await.unwrap();

    assert_eq!(store.fetch_link(&"a".into()).await.unwrap(), None);
    store
        .save_link(&"a".into(), AutosharesUserId(1))
        .await
        .unwrap();
    store
        .save_link(&"a".into(), AutosharesUserId(2))
        .await
        .unwrap();
    assert_eq!(
        store.fetch_link(&"a".into()).await.unwrap(),
        Some(AutosharesUserId(2)),
        "replaced"
    );

    let links = vec![
        ("b".into(), AutosharesUserId(3)),
        ("a".into(), AutosharesUserId(4)),
    ];
    store.import(&links).await.unwrap();
    assert_eq!(
        store.fetch_link(&"a".into()).await.unwrap(),
        Some(AutosharesUserId(4))
    );
    assert_eq!(
        store.fetch_link(&"b".into()).await.unwrap(),
        Some(AutosharesUserId(3))
    );

    let (a, b, missing) = ("a".into(), "b".into(), "missing".into());
    let found = store.fetch_links(&[&a, &missing, &b]).await.unwrap();
    assert_eq!(
        found,
        [(a, AutosharesUserId(4)), (b, AutosharesUserId(3))].into(),
        "the links that exist, in one statement"
    );

    let broken = vec![
        ("c".into(), AutosharesUserId(5)),
        ("d".into(), AutosharesUserId(-1)),
    ];
    assert!(
        store.import(&broken).await.is_err(),
        "the table refuses a non-positive id"
    );
    assert_eq!(
        store.fetch_link(&"c".into()).await.unwrap(),
        None,
        "all or nothing"
    );

    assert!(store.delete_link(&"a".into()).await.unwrap());
    assert!(!store.delete_link(&"a".into()).await.unwrap());
    store.close().await;
}

#[actix_web::test]
async fn the_store_works_on_sqlite() {
    exercise(TestDatabase::sqlite().await).await;
}

#[actix_web::test]
async fn the_store_works_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    exercise(database).await;
}
