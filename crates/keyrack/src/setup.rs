//! Configuration that touches the machine: the data directory, the pepper, the database URL,
//! logging and signals.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::Args;
use key_core::{Pepper, RandomSource};
use key_service::Application;
use key_store::{Store, StoreTimeouts};
use ring::rand::SystemRandom;

/// Where the data lives and how keys are hashed.
#[derive(Debug, Args)]
pub(crate) struct DatabaseConfig {
    /// Directory for the embedded SQLite database and the generated pepper file.
    #[arg(long, env = "KEYRACK_DATA_DIR", default_value = "./keyrack-data")]
    data_dir: PathBuf,
    /// Database URL: `sqlite://…` or `postgres://…`. Defaults to SQLite in the data directory.
    #[arg(long, env = "KEYRACK_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the pepper (at least 32 bytes). Defaults to `<data-dir>/pepper`, generated
    /// on first start when the database is the embedded SQLite.
    #[arg(long, env = "KEYRACK_PEPPER_FILE")]
    pepper_file: Option<PathBuf>,
    /// The pepper itself (at least 32 bytes), instead of a file; every replica sharing a
    /// database must use the same. Set it in the environment: a value on the command line is
    /// visible to every user of the machine (`ps`).
    #[arg(long, env = PEPPER_ENV, hide_env_values = true, value_name = "SECRET")]
    pepper: Option<String>,
    /// How long opening a database connection may take, e.g. `1s`.
    #[arg(long, env = "KEYRACK_DATABASE_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    database_connect_timeout: std::time::Duration,
    /// How long a call may wait for a free database connection, e.g. `1s`.
    #[arg(long, env = "KEYRACK_DATABASE_ACQUIRE_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    database_acquire_timeout: std::time::Duration,
    /// How long one statement may run (PostgreSQL) or wait for SQLite's write lock, e.g. `5s`.
    #[arg(long, env = "KEYRACK_DATABASE_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    database_statement_timeout: std::time::Duration,
}

const PEPPER_ENV: &str = "KEYRACK_PEPPER";

/// The embedded SQLite database's file, in the data directory.
const EMBEDDED_DATABASE: &str = "keyrack.db";

/// Refuses a pepper other than the one the database's keys were hashed with: the database
/// keeps the pepper's fingerprint (`Pepper::fingerprint`, never the pepper), recorded at the
/// first start.
pub(crate) async fn check_pepper(store: &Store, pepper: &Pepper) -> anyhow::Result<()> {
    let fingerprint = pepper.fingerprint()?;
    let recorded = store.pepper_fingerprint_or_record(&fingerprint).await?;
    if recorded != fingerprint {
        bail!(
            "this database was set up with a different pepper: with this one every key and \
             webhook secret would be invalid. Start with the original pepper (KEYRACK_PEPPER or \
             KEYRACK_PEPPER_FILE; every replica sharing the database needs the same)"
        );
    }
    Ok(())
}

/// What `serve` does about pending migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MigratePolicy {
    /// Applies them (on PostgreSQL under an advisory lock, so replicas started together
    /// migrate once).
    Auto,
    /// Leaves the schema alone: a deployment that migrates with a job.
    Off,
    /// Refuses to start unless every migration is applied.
    Check,
}

impl DatabaseConfig {
    /// The data directory: the embedded database, the generated pepper, the bootstrap key.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn is_embedded(&self) -> bool {
        self.database_url.is_none()
    }

    /// The embedded default's database file.
    fn embedded_database(&self) -> PathBuf {
        self.data_dir.join(EMBEDDED_DATABASE)
    }

    /// Connects, and does with pending migrations what `migrate` says.
    pub(crate) async fn open_store(&self, migrate: MigratePolicy) -> anyhow::Result<Store> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                create_private_dir(&self.data_dir)?;
                format!("sqlite://{}?mode=rwc", self.embedded_database().display())
            }
        };
        let timeouts = StoreTimeouts {
            connect: self.database_connect_timeout,
            acquire: self.database_acquire_timeout,
            statement: self.database_statement_timeout,
        };
        let store = Store::connect_with(&url, timeouts)
            .await
            .context("cannot connect to the database")?;
        match migrate {
            MigratePolicy::Auto => store
                .migrate()
                .await
                .context("cannot apply database migrations")?,
            MigratePolicy::Off => {}
            MigratePolicy::Check => {
                let pending: Vec<String> = store
                    .migrations()
                    .await
                    .context("cannot read the applied migrations")?
                    .into_iter()
                    .filter(|(_, applied)| !applied)
                    .map(|(name, _)| name)
                    .collect();
                if !pending.is_empty() {
                    anyhow::bail!(
                        "the database schema is not current: {} migration(s) pending ({}); run \
                         `keyrack migrate` first, or start with --migrate auto",
                        pending.len(),
                        pending.join(", ")
                    );
                }
            }
        }
        Ok(store)
    }

    /// For SQLite, an exclusive lock on a file beside the database, held while the returned
    /// file is open: SQLite is one process, and a second `serve` on the same database would
    /// keep its own caches and limits beside the first's. `None` on PostgreSQL.
    pub(crate) fn lock_sqlite(&self) -> anyhow::Result<Option<fs::File>> {
        let database = match &self.database_url {
            None => {
                create_private_dir(&self.data_dir)?;
                self.embedded_database()
            }
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(rest) => {
                    let path = rest.trim_start_matches("//");
                    let path = path.split('?').next().unwrap_or(path);
                    if path.is_empty() || path == ":memory:" {
                        return Ok(None);
                    }
                    PathBuf::from(path)
                }
                None => return Ok(None),
            },
        };
        let mut name = database.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = database.with_file_name(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another `keyrack serve` is already running on {}: SQLite is one process; stop \
                 it first, or use PostgreSQL (KEYRACK_DATABASE_URL) for several replicas",
                database.display()
            ),
            Err(fs::TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// The pepper, from `KEYRACK_PEPPER`, the pepper file, or (embedded default only) a file
    /// generated in the data directory on first start.
    pub(crate) fn pepper(&self) -> anyhow::Result<Pepper> {
        if let Some(value) = &self.pepper {
            return Pepper::new(value.as_bytes())
                .with_context(|| format!("{PEPPER_ENV} is unusable"));
        }
        let path = match &self.pepper_file {
            Some(path) => path.clone(),
            None if self.is_embedded() => {
                let path = self.data_dir.join("pepper");
                let database = self.embedded_database();
                if !path.exists() && database.exists() {
                    // A new pepper would make every stored key and webhook secret invalid.
                    bail!(
                        "the pepper file {} is missing but the database {} exists: restore the \
                         pepper from your backup (every key depends on it); to start over with an \
                         empty service, move the database away first",
                        path.display(),
                        database.display()
                    );
                }
                if !path.exists() {
                    create_private_dir(&self.data_dir)?;
                    generate_pepper_file(&path)?;
                }
                path
            }
            None => bail!(
                "no pepper configured: set {PEPPER_ENV} or KEYRACK_PEPPER_FILE (at least 32 bytes); \
                 every replica sharing a database must use the same pepper"
            ),
        };
        let material = fs::read(&path)
            .with_context(|| format!("cannot read the pepper file {}", path.display()))?;
        let mode = fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the pepper file is readable by other users; `chmod 600` it"
            );
        }
        let material = material.trim_ascii_end();
        Pepper::new(material)
            .with_context(|| format!("the pepper file {} is unusable", path.display()))
    }
}

/// Where the first start leaves the bootstrap admin key, in the data directory.
const BOOTSTRAP_KEY_FILE: &str = "bootstrap-admin-key";

/// Creates organization `default` and its operator key at the first start, and hands the key
/// over once: into `<data-dir>/bootstrap-admin-key`, readable by its owner only, and on stderr
/// as well only when stderr is a terminal. Otherwise stderr is the log stream (the journal, a
/// container's logs), which keeps and ships what it is given; it gets the file's path only.
/// The file is made before the organization, so a key is never minted that cannot be handed
/// over. Later starts find `default` and do nothing.
pub(crate) async fn bootstrap(
    app: &Application,
    data_dir: &Path,
    console_url: Option<&str>,
) -> anyhow::Result<()> {
    if app.keys.organization_named("default").await?.is_some() {
        return Ok(());
    }
    create_private_dir(data_dir)?;
    let path = data_dir.join(BOOTSTRAP_KEY_FILE);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {} for the bootstrap key", path.display()))?;
    // A file left by an earlier start of a database since removed may be wider than 0600.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    let created = match app.keys.bootstrap("default").await {
        Ok(created) => created,
        Err(error) => {
            let _ = fs::remove_file(&path);
            return Err(error.into());
        }
    };
    let Some((record, key)) = created else {
        // Another replica bootstrapped first; its key is in its own data directory.
        let _ = fs::remove_file(&path);
        return Ok(());
    };
    file.write_all(format!("{}\n", key.expose()).as_bytes())?;
    file.sync_all()?;
    let shown = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        format!("\n\n    {}\n", key.expose())
    } else {
        String::new()
    };
    let console = console_url
        .map(|url| format!("Sign in to the web console at {url} with this key.\n"))
        .unwrap_or_default();
    eprintln!(
        "\nCreated organization \"default\" and its first admin key (id {}).{shown}\n\
         The key is in {} (readable by you only): store it in your secret manager, then delete\n\
         the file. It is not shown again. Lost it? `keyrack admin-key create` mints another.\n\
         {console}",
        record.id,
        path.display()
    );
    Ok(())
}

/// Writes 32 random bytes, hex-encoded, to a new file only the owner can read.
fn generate_pepper_file(path: &Path) -> anyhow::Result<()> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the pepper file {}", path.display()))?;
    file.write_all(hex.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new pepper; back it up with the database");
    Ok(())
}

/// Creates the data directory readable by its owner only. The database holds key digests and
/// the directory holds the pepper; a directory others can enter is reported, not silently
/// changed, since the operator chose it.
fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data directory is accessible to other users; `chmod 700` it"
        );
    }
    Ok(())
}

/// The process-wide shutdown: every server of the process waits on it.
#[derive(Debug)]
pub(crate) struct Shutdown {
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT (Ctrl-C) from now on. Registering at once matters: a
    /// signal that arrives before its handler is registered kills the process with the default
    /// action instead of shutting it down gracefully.
    pub(crate) fn listen() -> anyhow::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = stop.send(true);
        });
        Ok(Shutdown { stopping })
    }

    /// Resolves once a shutdown signal has arrived.
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.clone();
        async move {
            // An error means the sender is gone, which only happens once it has sent.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}
