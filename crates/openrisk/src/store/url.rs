//! Which database `DATABASE_URL` names, read once at start-up.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

/// A database URL whose backend is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:…`: a file (or `sqlite::memory:`).
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl FromStr for DatabaseUrl {
    type Err = &'static str;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else if url.starts_with("sqlite:") {
            Ok(DatabaseUrl::Sqlite(url.to_owned()))
        } else {
            Err("must start with sqlite:// or postgres://")
        }
    }
}

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => url,
        }
    }

    /// The files a SQLite database keeps: the database, its write-ahead log and shared memory.
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        let DatabaseUrl::Sqlite(url) = self else {
            return Vec::new();
        };
        let Ok(options) = SqliteConnectOptions::from_str(url) else {
            return Vec::new();
        };
        let database = options.get_filename();
        if database.as_os_str().is_empty() || database.to_str() == Some(":memory:") {
            return Vec::new();
        }
        let with = |suffix: &str| {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        vec![database.to_owned(), with("-wal"), with("-shm")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_read_from_the_scheme() {
        assert!(matches!(
            "sqlite://./data/x.db".parse(),
            Ok(DatabaseUrl::Sqlite(_))
        ));
        assert!(matches!(
            "postgresql://h/db".parse(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!("postgres://h/db".parse(), Ok(DatabaseUrl::Postgres(_))));
        assert!("mysql://h/db".parse::<DatabaseUrl>().is_err());
        assert!("postgres:/h".parse::<DatabaseUrl>().is_err());
    }
}
