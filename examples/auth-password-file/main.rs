//! `auth-password-file`: aMQTT's `FileAuthPlugin` as a Midge plugin service.
//!
//! Answers `Authenticate` from a `user:hash` file (argon2 or sha512-crypt `$6$` hashes): no
//! user name → IGNORE, unknown user → DENY, password checked → ALLOW (cacheable for
//! `cache-ttl`) or DENY. At most one check per core runs at once; the others queue, and a
//! check the broker's deadline cannot cover is denied as busy at once (see `gate.rs`). The file
//! is reloaded when it changes (checked every `--poll-interval`) and on SIGHUP.
//! `auth-password-file passwd FILE USER` adds or replaces a user (argon2id), reading the
//! password from stdin. See README.md.

mod gate;
mod passwords;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use gate::{Gate, Refused};
use midge_examples::{ServeArgs, init_tracing, parse_duration, serve};
use midge_plugin::{AuthRequest, Authenticator, Decision, PluginConfig, Server, Status};
use passwords::PasswordFile;
use serde::{Deserialize, Deserializer};
use tracing::{error, info, warn};

/// The port `--listen` defaults to.
const DEFAULT_PORT: u16 = 50061;

/// `cache-ttl` when the config has none.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// MQTT 5 CONNACK reason code 0x89, Server busy: a check refused by the [`Gate`].
const SERVER_BUSY: u8 = 0x89;

#[derive(Debug, Parser)]
#[command(
    name = "auth-password-file",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// The password file; also env MIDGE_PASSWORD_FILE. The broker's config key
    /// `password-file` replaces it.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// How often the file's modification time is checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    poll_interval: Duration,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add USER to FILE, or replace its hash, with an argon2id hash of the password read from
    /// the first line of stdin. Other lines and comments are kept; FILE is created if missing.
    Passwd {
        /// The password file.
        file: PathBuf,
        /// The user name.
        user: String,
    },
}

/// The plugin's config section (`plugins.<alias>.config`); unknown keys are refused, as aMQTT's
/// strict plugin configs do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// The password file (aMQTT's `password_file` is accepted too).
    #[serde(default, alias = "password_file")]
    password_file: Option<PathBuf>,
    /// How long the broker may reuse an ALLOW for the same client id, user name and password;
    /// `0s`: never. Denials are never cached.
    #[serde(default = "default_cache_ttl", deserialize_with = "duration")]
    cache_ttl: Duration,
}

fn default_cache_ttl() -> Duration {
    DEFAULT_CACHE_TTL
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The loaded file and what it was loaded from.
#[derive(Debug, Default)]
struct Table {
    path: Option<PathBuf>,
    file: Arc<PasswordFile>,
    stamp: Option<Stamp>,
}

/// What changes when a file is rewritten or replaced.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok((meta.modified()?, meta.len(), inode))
}

/// The authenticator: a shared, reloadable [`Table`], and the [`Gate`] its checks go through.
#[derive(Debug, Clone)]
struct FileAuth {
    table: Arc<RwLock<Table>>,
    gate: Arc<Gate>,
    /// `cache-ttl` in milliseconds.
    cache_ttl_ms: Arc<AtomicU64>,
    /// Whether the warning about a deadline shorter than one check was logged.
    warned_short: Arc<AtomicBool>,
}

/// How one password check ended.
enum Outcome {
    UnknownUser,
    Checked(bool),
    UnknownFormat,
}

impl FileAuth {
    fn new(gate: Gate) -> Self {
        FileAuth {
            table: Arc::default(),
            gate: Arc::new(gate),
            cache_ttl_ms: Arc::new(AtomicU64::new(millis(DEFAULT_CACHE_TTL))),
            warned_short: Arc::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads `path` and makes it the file in use. On error nothing changes.
    fn load(&self, path: &Path) -> Result<(), String> {
        let before = stamp(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (file, warnings) = PasswordFile::parse(&text);
        for warning in warnings {
            warn!(path = %path.display(), "{warning}");
        }
        info!(path = %path.display(), users = file.len(), "password file loaded");
        let costs = file.costs();
        if costs.len() > 1 {
            warn!(
                path = %path.display(),
                "the hashes have {} different costs (algorithm or parameters): checks take \
                 different times for different users, and unknown users cost what the most \
                 common one does; rehash them all with the same parameters",
                costs.len()
            );
        }
        let dummy = file.dummy().to_owned();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Table {
            path: Some(path.to_owned()),
            file: Arc::new(file),
            stamp: Some(before),
        };
        self.calibrate(dummy);
        Ok(())
    }

    /// Measures one check at the file's cost (against its dummy hash) in the background, so
    /// that the first burst of logins already knows how long a check takes, and logs it with
    /// the `timeout` the broker's config needs.
    fn calibrate(&self, dummy: String) {
        let gate = Arc::clone(&self.gate);
        tokio::spawn(async move {
            match gate.run(None, move || passwords::verify(&dummy, b"")).await {
                Ok(_) => {
                    let cost = gate.cost().unwrap_or_default();
                    info!(
                        cost_ms = millis(cost),
                        parallel = gate.parallel(),
                        "one password check takes about {cost:?} here, {} at once: the \
                         alias's `timeout` must exceed it, and a burst of N first logins \
                         needs about ceil(N / {}) times it",
                        gate.parallel(),
                        gate.parallel()
                    );
                }
                Err(e) => warn!("measuring a password check failed: {e:?}"),
            }
        });
    }

    /// Warns once when the broker gives a check less time than one check takes: its `timeout`
    /// for this plugin is too short for the file's hashes.
    fn check_deadline(&self, deadline: Option<tokio::time::Instant>) {
        let (Some(deadline), Some(cost)) = (deadline, self.gate.cost()) else {
            return;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < cost && !self.warned_short.swap(true, Ordering::Relaxed) {
            warn!(
                left_ms = millis(left),
                cost_ms = millis(cost),
                "the broker's deadline is shorter than one password check: raise the alias's \
                 `timeout` (plugins.<alias>.timeout) well above {cost:?}"
            );
        }
    }

    /// Reloads the file in use when it changed (or always, with `force`). A file that cannot be
    /// read keeps the last good table.
    fn reload(&self, force: bool) {
        let (path, old) = {
            let table = self.read();
            (table.path.clone(), table.stamp)
        };
        let Some(path) = path else { return };
        match stamp(&path) {
            Ok(now) if !force && Some(now) == old => {}
            Ok(_) => {
                if let Err(e) = self.load(&path) {
                    error!("reload failed, keeping the previous users: {e}");
                }
            }
            Err(e) if force || old.is_some() => {
                error!(path = %path.display(), "cannot read the password file, keeping the previous users: {e}");
                self.table.write().unwrap_or_else(|e| e.into_inner()).stamp = None;
            }
            Err(_) => {}
        }
    }

    /// Reloads on change every `poll` and on SIGHUP, forever.
    async fn watch(self, poll: Duration) {
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| error!("no SIGHUP handler: {e}"))
            .ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tick.tick() => self.reload(false),
                _ = hangup => {
                    info!("SIGHUP: reloading the password file");
                    self.reload(true);
                }
            }
        }
    }
}

impl Authenticator for FileAuth {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        let Some(user) = req.username else {
            return Ok(Decision::ignore());
        };
        let (has_path, file) = {
            let table = self.read();
            (table.path.is_some(), Arc::clone(&table.file))
        };
        if !has_path {
            return Ok(Decision::deny("no password file configured"));
        }
        let password = req
            .password
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        let hash = file.hash_of(&user).map(str::to_owned);
        self.check_deadline(req.deadline);
        // Hashing is deliberately slow: off the async workers, one per core at once.
        let check = move || match hash {
            None => {
                // As long as a known user's check: the dummy has the file's parameters.
                let _ = passwords::verify(file.dummy(), &password);
                Outcome::UnknownUser
            }
            Some(hash) => match passwords::verify(&hash, &password) {
                Ok(ok) => Outcome::Checked(ok),
                Err(_) => Outcome::UnknownFormat,
            },
        };
        let outcome = match self.gate.run(req.deadline, check).await {
            Ok(outcome) => outcome,
            Err(Refused::Failed(e)) => {
                return Err(Status::internal(format!("password check failed: {e}")));
            }
            Err(refused) => {
                // Fail closed, whatever the alias's fallbacks, and without counting against
                // the broker's circuit breaker: a busy answer is not a broken plugin.
                let why = match refused {
                    Refused::Late { cost } => format!(
                        "the checks queued ahead cannot finish before the broker's deadline \
                         (one takes {cost:?}, {} at once)",
                        self.gate.parallel()
                    ),
                    _ => format!("{} checks already waiting", self.gate.max_waiting()),
                };
                warn!(%user, client_id = %req.client_id, "busy, denied: {why}");
                // The details stay in this log: the reason may reach the client.
                return Ok(Decision::deny("server busy, try again").reason_code(SERVER_BUSY));
            }
        };
        match outcome {
            Outcome::Checked(true) => {
                let ttl = Duration::from_millis(self.cache_ttl_ms.load(Ordering::Relaxed));
                Ok(if ttl.is_zero() {
                    Decision::allow()
                } else {
                    Decision::allow().cache_for(ttl)
                })
            }
            Outcome::Checked(false) => Ok(Decision::deny("bad user name or password")),
            Outcome::UnknownUser => Ok(Decision::deny("bad user name or password")),
            // aMQTT raises UnknownHashError here; an error makes the broker apply `on-error`.
            Outcome::UnknownFormat => Err(Status::failed_precondition(format!(
                "user {user:?}: {}",
                passwords::UnknownHashFormat
            ))),
        }
    }

    async fn on_configure(&self, config: &PluginConfig) -> Result<(), Status> {
        let config: Config = config.parse()?;
        self.cache_ttl_ms
            .store(millis(config.cache_ttl), Ordering::Relaxed);
        let Some(path) = config.password_file else {
            if self.read().path.is_none() {
                warn!("no password-file configured: every client with a user name is denied");
            }
            return Ok(());
        };
        if self.read().path.as_deref() == Some(path.as_path()) {
            return Ok(());
        }
        self.load(&path).map_err(Status::invalid_argument)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `passwd FILE USER`: sets USER's hash in FILE, written atomically (temp file + rename).
fn passwd(file: &Path, user: &str) -> Result<(), String> {
    passwords::valid_username(user)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for {user} (shown as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err("empty password (give it on the first line of stdin)".to_owned());
    }
    let hash = passwords::hash_argon2id(password.as_bytes())?;
    let old = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let tmp = file.with_file_name(format!(
        ".{}.tmp-{}",
        file.file_name()
            .map_or("passwords".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, passwords::set_user(&old, user, &hash))?;
        if let Ok(meta) = std::fs::metadata(file) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", file.display())
    })?;
    eprintln!("{}: set the password of {user}", file.display());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Passwd { file, user }) = &cli.command {
        return match passwd(file, user) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("auth-password-file passwd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(code) = cli.serve.health_check_mode().await {
        return code;
    }
    init_tracing(cli.serve.log_format);
    let auth = FileAuth::new(Gate::per_core());
    let path = cli
        .password_file
        .or_else(|| std::env::var_os("MIDGE_PASSWORD_FILE").map(PathBuf::from));
    match path {
        Some(path) => {
            // A missing file is a start-up error, as aMQTT's PluginInitError.
            if let Err(e) = auth.load(&path) {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        }
        None => info!("no --password-file: waiting for the broker's `password-file` config"),
    }
    tokio::spawn(auth.clone().watch(cli.poll_interval));
    let server = Server::new("auth-password-file", env!("CARGO_PKG_VERSION")).authenticator(auth);
    serve(server, cli.serve.listen_or(DEFAULT_PORT)).await
}
