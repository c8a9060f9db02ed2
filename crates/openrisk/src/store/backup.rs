//! `openrisk backup` and `openrisk restore`: a consistent copy of the database taken while the
//! service serves writes, and its restore into an empty database.
//!
//! - SQLite: `VACUUM INTO` copies the database as of one read transaction; the copy is a SQLite
//!   file. Restoring copies it into place.
//! - PostgreSQL: `pg_dump --format=custom` (one snapshot) and `pg_restore` in one transaction; the
//!   PostgreSQL client tools must be installed, of the server's major version or newer.
//!
//! Either way the file is written beside its destination and renamed into place when complete,
//! so an interrupted run leaves no half-written file under the final name. A restore draws a new
//! data epoch: cache keys carry it, so no replica serves an answer cached before the restore.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::DatabaseUrl;

enum Target {
    Sqlite(Box<SqliteConnectOptions>),
    Postgres(String),
}

impl Target {
    fn of(database_url: &DatabaseUrl) -> anyhow::Result<Target> {
        Ok(match database_url {
            DatabaseUrl::Postgres(url) => Target::Postgres(url.clone()),
            DatabaseUrl::Sqlite(url) => Target::Sqlite(Box::new(SqliteConnectOptions::from_str(url)?)),
        })
    }
}

/// Writes a consistent copy of the database `database_url` names to `file`, which must not exist.
pub async fn backup(database_url: &DatabaseUrl, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        bail!("{} exists already: choose a new file", file.display());
    }
    let partial = partial_path(file);
    let _ = std::fs::remove_file(&partial);
    match Target::of(database_url)? {
        Target::Sqlite(options) => {
            let mut conn = SqliteConnection::connect_with(&options.read_only(true))
                .await
                .context("cannot open the SQLite database (DATABASE_URL)")?;
            let into = partial.to_str().context("the backup file's path is not UTF-8")?;
            sqlx::query("VACUUM INTO ?")
                .bind(into)
                .execute(&mut conn)
                .await
                .context("VACUUM INTO failed")?;
        }
        Target::Postgres(url) => {
            let mut dump = std::process::Command::new("pg_dump");
            dump.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
                .arg(&partial)
                .arg(format!("--dbname={url}"));
            run_tool(dump, "pg_dump")?;
        }
    }
    sync_and_rename(&partial, file)
}

/// Restores the backup `file` into the empty database `database_url` names, and draws a new data
/// epoch in it.
pub async fn restore(database_url: &DatabaseUrl, file: &Path) -> anyhow::Result<()> {
    if !file.is_file() {
        bail!("no backup file at {}", file.display());
    }
    match Target::of(database_url)? {
        Target::Sqlite(options) => {
            let destination = options.get_filename().to_owned();
            for path in [destination.clone(), suffixed(&destination, "-wal")] {
                if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                    bail!(
                        "{} exists and is not empty: restore into a new database file",
                        path.display()
                    );
                }
            }
            let partial = partial_path(&destination);
            std::fs::copy(file, &partial).with_context(|| format!("cannot copy {}", file.display()))?;
            // A copy keeps its source's mode: the database is the service's user's alone.
            std::fs::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            let mut conn = SqliteConnection::connect_with(&options.clone().filename(&partial))
                .await
                .context("cannot open the restored copy")?;
            let check: String = sqlx::query_scalar("PRAGMA quick_check")
                .fetch_one(&mut conn)
                .await
                .context("the backup file is not a SQLite database")?;
            if check != "ok" {
                bail!("the backup file is damaged: {check}");
            }
            renew_data_epoch(&mut conn).await?;
            conn.close().await?;
            sync_and_rename(&partial, &destination)?;
        }
        Target::Postgres(url) => {
            let mut conn = PgConnection::connect(&url)
                .await
                .context("cannot connect to the database (DATABASE_URL)")?;
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_one(&mut conn)
            .await?;
            if tables > 0 {
                bail!("the database holds {tables} tables: restore into an empty database");
            }
            let mut load = std::process::Command::new("pg_restore");
            load.args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
            ])
            .arg(format!("--dbname={url}"))
            .arg(file);
            run_tool(load, "pg_restore")?;
            renew_data_epoch(&mut conn).await?;
        }
    }
    Ok(())
}

/// A new data epoch; a backup older than the table gets one when the service migrates it.
async fn renew_data_epoch<'c>(conn: impl sqlx::Executor<'c>) -> anyhow::Result<()> {
    // A number drawn here, not input: safe to write into the statement.
    let sql = format!(
        "UPDATE data_epoch SET epoch = {} WHERE id = 1",
        rand::random::<i64>()
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.message().contains("data_epoch") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn run_tool(mut command: std::process::Command, name: &str) -> anyhow::Result<()> {
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{name} is not installed: install the PostgreSQL client tools (the server's major version or newer)"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot run {name}")),
    };
    if !output.status.success() {
        bail!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn partial_path(path: &Path) -> PathBuf {
    suffixed(path, ".partial")
}

/// Flushes `partial` to disk and gives it its final name.
fn sync_and_rename(partial: &Path, file: &Path) -> anyhow::Result<()> {
    std::fs::File::open(partial)?.sync_all()?;
    std::fs::rename(partial, file).with_context(|| format!("cannot create {}", file.display()))?;
    Ok(())
}
