//! The `openrisk` command line.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::cache::{Cache, Mutation};
use crate::config::Config;
use crate::domain::auth::{Role, generate_token, hash_token};
use crate::domain::list::PageRequest;
use crate::domain::org::{NewOrganization, NewUser, Organization, TokenDraft, User};
use crate::seed::Generator;
use crate::startup::{Application, keep_files_private, open_store, shutdown_signal};
use crate::store::{self, Store, StoreError, TokenGrant};

#[derive(Parser)]
#[command(name = "openrisk", version, about = "Multi-tenant risk-register API")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Fill an organization with generated, realistic risks.
    Seed {
        #[arg(long)]
        org: String,
        #[arg(long, default_value_t = 1000)]
        risks: usize,
        /// Same seed, same register.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Print the effective configuration (secrets masked).
    Config,
    /// Write a consistent copy of the database to FILE while the service runs (SQLite: VACUUM INTO;
    /// PostgreSQL: pg_dump, which must be installed).
    Backup { file: std::path::PathBuf },
    /// Restore a backup into the empty database DATABASE_URL names (PostgreSQL: pg_restore).
    Restore { file: std::path::PathBuf },
    /// Manage the key that seals connector secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Compare the dashboard aggregates with a recount of the register; exits 1 on any drift.
    Verify {
        /// Rebuild drifted aggregates from the register (writes wait meanwhile).
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization; prints its admin token on stdout.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seal every connector configuration again under the current key. With the key file: a new
    /// key first, and the old ones dropped once nothing needs them. With OPENRISK_SECRETS_KEY: set
    /// the new key there and the old one in OPENRISK_SECRETS_PREVIOUS_KEYS on every replica first.
    Rotate,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for the organization's admin user; prints it on stdout.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["viewer", "analyst", "admin"]))]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// A system token: may create organizations and read the service-wide admin reports
        /// (/api/v1/admin/pool, /api/v1/admin/cache). Requires --role admin.
        #[arg(long)]
        system: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    crate::telemetry::init(&config.log_filter, config.log_format);
    keep_files_private(&config).context("cannot make the data directory private (OPENRISK_DATA_DIR)")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let stop = shutdown_signal().context("cannot listen for shutdown signals")?;
            Application::build(&config).await?.run_until(stop).await?
        }
        Command::Migrate => {
            open_store(&config).await?;
            eprintln!("migrations applied");
        }
        Command::Config => println!("{config}"),
        Command::Org {
            command: OrgCommand::Create { slug, name },
        } => create_organization(&config, slug, name).await?,
        Command::Token {
            command:
                TokenCommand::Create {
                    org,
                    role,
                    name,
                    system,
                },
        } => create_token(&config, &org, &role, name, system).await?,
        Command::Backup { file } => {
            let started = std::time::Instant::now();
            store::backup::backup(&config.database_url, &file).await?;
            eprintln!("backed up to {} in {:.1?}", file.display(), started.elapsed());
        }
        Command::Restore { file } => {
            let started = std::time::Instant::now();
            store::backup::restore(&config.database_url, &file).await?;
            eprintln!("restored {} in {:.1?}", file.display(), started.elapsed());
        }
        Command::Secrets {
            command: SecretsCommand::Rotate,
        } => rotate_secrets(&config).await?,
        Command::Verify { repair } => {
            let store = open_store(&config).await?;
            verify(store.as_ref(), repair).await?;
        }
        Command::Seed { org, risks, seed } => {
            let store = open_store(&config).await?;
            let org = store
                .organization_by_slug(&org)
                .await
                .context("no such organization")?;
            seed_register(store.as_ref(), &org, risks, seed).await?;
            after_write(&config, &org, &[Mutation::User, Mutation::Asset, Mutation::Risk]).await?;
        }
    }
    Ok(())
}

/// `openrisk org create`: prints the new organization's admin token.
async fn create_organization(config: &Config, slug: String, name: Option<String>) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let draft = NewOrganization {
        slug: Some(slug),
        name,
        admin_email: None,
    }
    .validate()
    .map_err(|v| anyhow::anyhow!("invalid organization: {:?}", v.errors()))?;
    let token = generate_token();
    let grant = TokenGrant {
        hash: hash_token(&token),
        name: "admin".into(),
        role: Role::Admin,
        system: false,
        expires_at: None,
    };
    store.create_organization(&draft, &grant).await?;
    println!("{token}");
    Ok(())
}

/// `openrisk token create`: a token for the organization's first admin, printed.
async fn create_token(
    config: &Config,
    org: &str,
    role: &str,
    name: String,
    system: bool,
) -> anyhow::Result<()> {
    if system && role != "admin" {
        anyhow::bail!("a system token must have --role admin");
    }
    let store = open_store(config).await?;
    let org = store
        .organization_by_slug(org)
        .await
        .context("no such organization")?;
    let admin = first_admin(store.as_ref(), &org).await?;
    let draft = TokenDraft {
        user_id: Some(admin.id),
        name,
        role: Some(role.parse().map_err(anyhow::Error::msg)?),
        expires_at: None,
        system,
    };
    let token = generate_token();
    store
        .create_token(org.id, admin.id, &draft, hash_token(&token))
        .await?;
    after_write(config, &org, &[Mutation::Token]).await?;
    println!("{token}");
    Ok(())
}

/// `openrisk secrets rotate`: passes until one finds nothing left under an older key (a write that
/// sealed just before the rotation is caught by the next pass), then the old keys go.
async fn rotate_secrets(config: &Config) -> anyhow::Result<()> {
    let keys = Arc::new(store::SecretKeys::load(&config.secrets)?);
    let from_file = config.secrets.key.is_none();
    if from_file {
        keys.rotate_file()?;
    }
    let store = store::connect(&config.database_url, &config.pool, keys.clone()).await?;
    let mut resealed = 0;
    loop {
        let pass = store.reseal_installations(true).await?;
        if pass == 0 {
            break;
        }
        resealed += pass;
    }
    keys.forget_previous()?;
    println!("{resealed} connector configurations sealed again under the current key");
    if !from_file {
        eprintln!("nothing needs OPENRISK_SECRETS_PREVIOUS_KEYS any more: remove it from every replica");
    }
    Ok(())
}

/// Reports each aggregate table's drift from a recount; with `repair`, rebuilds them when any
/// drifted and checks again.
async fn verify(store: &dyn Store, repair: bool) -> anyhow::Result<()> {
    let report = |drift: &[store::AggregateDrift]| {
        for table in drift {
            println!(
                "{}: {} rows missing or different, {} rows extra",
                table.table, table.missing, table.extra
            );
        }
        drift.iter().all(store::AggregateDrift::is_clean)
    };
    if report(&store.aggregate_drift().await?) {
        println!("the aggregates match the register");
        return Ok(());
    }
    if !repair {
        bail!("the aggregates differ from the register: run `openrisk verify --repair`");
    }
    store.recount_aggregates().await?;
    println!("recounted");
    if !report(&store.aggregate_drift().await?) {
        bail!("the aggregates still differ from the register after the recount");
    }
    eprintln!(
        "cached dashboards and summaries expire within CACHE_TTL_DASHBOARD and CACHE_TTL_REPORTS; \
         POST /api/v1/admin/cache/invalidate clears an organization's at once"
    );
    Ok(())
}

/// Tells the replicas' caches what a command changed, the way a write over HTTP does: through
/// Redis, which every replica follows. Without Redis, a running server's in-process cache cannot be
/// reached; its entries expire within their TTL.
async fn after_write(config: &Config, org: &Organization, mutations: &[Mutation]) -> anyhow::Result<()> {
    if config.cache.redis_url.is_none() {
        eprintln!(
            "REDIS_URL is not set: a running server keeps what it cached of {} until it expires (CACHE_TTL)",
            org.slug
        );
        return Ok(());
    }
    let cache = Cache::new(config.cache.clone()).context("invalid cache settings (REDIS_URL)")?;
    for &mutation in mutations {
        // Which risks changed is not known here: all of them may have.
        cache.after_write(org.id, mutation, None, None).await;
    }
    Ok(())
}

async fn first_admin(store: &dyn Store, org: &Organization) -> anyhow::Result<User> {
    let page = PageRequest {
        limit: 200,
        after: None,
    };
    let users = store.users(org.id, &page).await?;
    match users.items.into_iter().find(|u| u.role == Role::Admin) {
        Some(admin) => Ok(admin),
        None => bail!("organization {} has no admin user", org.slug),
    }
}

/// Seeds in transactions of `BATCH` risks so memory stays flat whatever the size.
pub async fn seed_register(
    store: &dyn Store,
    org: &Organization,
    risks: usize,
    seed: u64,
) -> anyhow::Result<()> {
    const BATCH: usize = 5_000;
    const OWNERS: usize = 25;
    let started = std::time::Instant::now();
    let admin = first_admin(store, org).await?;
    for i in 0..OWNERS {
        let user = NewUser {
            email: Some(format!("owner{}@{}.invalid", i + 1, org.slug)),
            name: Some(format!("Risk Owner {}", i + 1)),
            role: Some(if i % 5 == 0 { Role::Analyst } else { Role::Viewer }),
        }
        .validate()
        .map_err(|v| anyhow::anyhow!("{:?}", v.errors()))?;
        match store.create_user(org.id, &user).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let owners = store
        .users(
            org.id,
            &PageRequest {
                limit: 200,
                after: None,
            },
        )
        .await?;
    let owners = owners.items.into_iter().map(|u| u.id).collect();
    let mut generator = Generator::new(seed, crate::domain::now(), owners, risks);
    let assets = generator.assets((risks / 20).clamp(5, 5_000));
    store
        .insert_seed(
            org.id,
            admin.id,
            &store::SeedBatch {
                assets,
                ..Default::default()
            },
        )
        .await?;
    let mut done = 0;
    while done < risks {
        let n = BATCH.min(risks - done);
        let first = store.reserve_risk_numbers(org.id, n as i64).await?;
        let batch = generator.risks(first, n);
        store.insert_seed(org.id, admin.id, &batch).await?;
        done += n;
        eprintln!("seeded {done}/{risks} risks");
    }
    // Bulk loads churn the aggregate rows (one update per risk): rebuilt, they are compact again.
    store.recount_aggregates().await?;
    store.analyze().await?;
    eprintln!(
        "seeded {risks} risks into {} in {:.1?}",
        org.slug,
        started.elapsed()
    );
    Ok(())
}
