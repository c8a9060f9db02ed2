//! Which database `DATABASE_URL` names, read once at start-up.

use std::str::FromStr;

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
