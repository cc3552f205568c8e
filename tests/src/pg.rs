//! PostgreSQL for tests: one fresh database per test, so nextest's parallel processes never see
//! each other's rows. Without `DATABASE_URL` the PostgreSQL variant prints a skip line (CI always
//! sets it).

use sqlx::Connection as _;

/// A database created for one test; [`TestDb::drop_db`] removes it, and so does dropping the
/// value (e.g. when the test panics), so failed runs do not leave databases behind.
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
    dropped: bool,
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a runtime (or during a panic): use a thread with its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&admin_url, &name));
            }
        })
        .join();
    }
}

/// The server URL from `DATABASE_URL`, or `None` after printing why the test is skipped.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            println!("skipped: {test} needs DATABASE_URL=postgres://… (CI sets it)");
            None
        }
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

impl TestDb {
    /// Create an empty database on the server named by `DATABASE_URL`; `None` = skipped.
    pub async fn create(test: &str) -> Option<TestDb> {
        let admin_url = database_url(test)?;
        let name = format!("capstan_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => panic!("DATABASE_URL is set but PostgreSQL is unreachable: {e}"),
        };
        let create = format!("CREATE DATABASE \"{name}\"");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
        {
            panic!("creating test database {name}: {e}");
        }
        let _ = conn.close().await;
        Some(TestDb {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            dropped: false,
        })
    }

    /// Drop the database (forcing out any connection still open).
    pub async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
