//! `gantry_store::open`: which database an address opens, and that each opens with its
//! schema in place (a repository can be written and read back).

use gantry_store::{NewRepo, Store, StoreError, open};

/// Writes a repository and reads it back through `store`.
async fn round_trip(store: &dyn Store) {
    let made = store
        .create_repo(NewRepo {
            name: "app".into(),
            url: "/srv/git/app".into(),
            webhook_secret: None,
        })
        .await
        .expect("create repo");
    assert_eq!(store.repo_by_name("app").await.expect("read back"), made);
}

#[tokio::test]
async fn sqlite_addresses() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plain = dir.path().join("new/folder/db.sqlite");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("url.sqlite").display()
    );
    for (address, file) in [
        (plain.to_string_lossy().into_owned(), Some(plain.clone())),
        (url, Some(dir.path().join("url.sqlite"))),
        // One connection serves reads and writes, so reads see the writes.
        ("sqlite::memory:".to_owned(), None),
    ] {
        let store = open(&address).await.expect(&address);
        round_trip(&*store).await;
        store.close().await;
        if let Some(file) = file {
            assert!(file.is_file(), "{address} created {}", file.display());
        }
    }
}

#[tokio::test]
async fn unsupported_addresses() {
    for (address, expect) in [(
        "mysql://root@localhost/gantry",
        "database error: unsupported database url `mysql://…`: use postgres://…, sqlite:… or a file path",
    )] {
        let err = open(address).await.err().expect("refused");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert_eq!(err.to_string(), expect);
    }
}

#[tokio::test]
#[expect(
    clippy::print_stderr,
    reason = "the skip notice is for the person running the tests"
)]
async fn postgres_address() {
    let Ok(url) = std::env::var("GANTRY_TEST_POSTGRES") else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "GANTRY_TEST_POSTGRES is not set: CI must run the PostgreSQL store tests"
        );
        eprintln!("skipped: GANTRY_TEST_POSTGRES is not set");
        return;
    };
    // A schema of its own, chosen through the URL's `options` as a user could.
    let schema = format!("test_open_{}", std::process::id());
    let admin = async |sql: String| {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("admin statement");
    };
    admin(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    admin(format!("CREATE SCHEMA {schema}")).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = open(&format!("{url}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .expect("open PostgreSQL");
    round_trip(&*store).await;
    store.close().await;
    admin(format!("DROP SCHEMA {schema} CASCADE")).await;
}
