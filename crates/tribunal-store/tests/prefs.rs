//! Preference records in the store, on SQLite and on PostgreSQL (`TRIBUNAL_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`): one row per content id, duplicates
//! counted and left as first stored, filters by source and subset, insertion order kept.

use tribunal_store::testing::TestDatabase;
use tribunal_store::{PreferenceInsert, PreferenceRow, Store};

fn row(id: &str, source: &str, subset: Option<&str>, record: &str) -> PreferenceRow {
    PreferenceRow {
        content_id: id.into(),
        source: source.into(),
        subset: subset.map(str::to_owned),
        record: record.into(),
    }
}

async fn check(store: &Store) {
    let first = [
        row("c3", "hh-rlhf", Some("harmless"), "{\"n\":1}"),
        row("c1", "hh-rlhf", Some("helpful"), "{\"n\":2}"),
        row("c3", "hh-rlhf", Some("harmless"), "{\"n\":3}"),
    ];
    let got = store
        .insert_preferences(&first, "2026-12-02T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        got,
        PreferenceInsert {
            added: 2,
            duplicates: 1
        }
    );
    let again = [
        row("c1", "trl", None, "{\"n\":4}"),
        row("c2", "constitution", None, "{\"n\":5}"),
    ];
    let got = store
        .insert_preferences(&again, "2026-12-02T00:00:01Z")
        .await
        .unwrap();
    assert_eq!(
        got,
        PreferenceInsert {
            added: 1,
            duplicates: 1
        }
    );
    let all = store.preferences(None, None).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.content_id.as_str()).collect();
    assert_eq!(ids, ["c3", "c1", "c2"]);
    // The first stored copy stays.
    assert_eq!(all[1].record, "{\"n\":2}");
    assert_eq!(all[1].source, "hh-rlhf");
    let hh = store.preferences(Some("hh-rlhf"), None).await.unwrap();
    assert_eq!(hh.len(), 2);
    let helpful = store
        .preferences(Some("hh-rlhf"), Some("helpful"))
        .await
        .unwrap();
    assert_eq!(
        helpful,
        vec![row("c1", "hh-rlhf", Some("helpful"), "{\"n\":2}")]
    );
    let ai = store.preferences(Some("constitution"), None).await.unwrap();
    assert_eq!(ai.len(), 1);
    assert_eq!(ai[0].subset, None);
    assert!(store
        .preferences(Some("nope"), None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn preferences_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    check(&store).await;
    // Reopening keeps the table and its rows.
    drop(store);
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(store.preferences(None, None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn preferences_on_postgres() {
    let db = TestDatabase::create("tribunal_prefs")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&db.url).await.unwrap();
    check(&store).await;
    store.close().await;
    db.drop().await.unwrap();
}
