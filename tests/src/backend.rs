//! The queue backends every queue and intake test runs against.

use std::sync::Arc;

use capstan_worker::queue::{self, Queue};

use crate::pg::TestDb;

/// A queue plus whatever keeps it alive (temp dir, test database).
pub struct Backend {
    pub queue: Arc<dyn Queue>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    db: Option<TestDb>,
}

impl Backend {
    /// A fresh SQLite file in a temp dir.
    pub async fn sqlite() -> Backend {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
        let queue = match queue::open(&url).await {
            Ok(q) => q,
            Err(e) => panic!("opening {url}: {e}"),
        };
        Backend {
            queue,
            url,
            _dir: Some(dir),
            db: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (skip line printed) without `DATABASE_URL`.
    pub async fn postgres(test: &str) -> Option<Backend> {
        let db = TestDb::create(test).await?;
        let queue = match queue::open(&db.url).await {
            Ok(q) => q,
            Err(e) => panic!("opening test database: {e}"),
        };
        Some(Backend {
            queue,
            url: db.url.clone(),
            _dir: None,
            db: Some(db),
        })
    }

    /// Drop the test database, if any.
    pub async fn cleanup(self) {
        drop(self.queue);
        if let Some(db) = self.db {
            db.drop_db().await;
        }
    }
}

/// Generate `sqlite` and `postgres` variants of async test functions taking a [`Backend`].
///
/// ```ignore
/// both_backends!(claims_in_order, dedupes);
/// async fn claims_in_order(b: &Backend) { … }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::backend::Backend::sqlite().await;
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(b) = $crate::backend::Backend::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
    };
}

/// [`both_backends!`] for tests that hand the [`Backend`] over to what they build (a world that
/// owns its store) and clean it up themselves.
#[macro_export]
macro_rules! both_backends_owned {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::backend::Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(b) = $crate::backend::Backend::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(b).await;
                }
            )*
        }
    };
}
