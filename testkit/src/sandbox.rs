//! A complete, private dbxport set-up in one directory: a `dbus-daemon` of its own, the Dropbox
//! emulator on 127.0.0.1, and the real `dbxportd` binary with its own XDG directories.
//!
//! `dbxportctl demo`, the integration tests and the benchmarks all start dbxport through this
//! module, so what they exercise is exactly what a user runs — only the bus addresses and the
//! Dropbox base URLs differ (the private bus serves as both session and system bus). Nothing here touches the machine's session bus, the user's config,
//! keyring or home.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::emulator::{Emulator, EmulatorConfig};
use dbxport::config::Config;
use dbxport::service::{AccountProxy, BUS_NAME};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot start dbus-daemon ({0}); install it (Debian/Ubuntu: apt-get install dbus-daemon)"
    )]
    Bus(String),
    #[error("the Dropbox emulator did not start: {0}")]
    Emulator(String),
    #[error("dbxportd did not start: {0}")]
    Daemon(String),
    #[error("D-Bus: {0}")]
    DBus(#[from] zbus::Error),
    #[error("cannot start the Secret Service ({0}); install gnome-keyring")]
    Keyring(String),
    #[error("login refused: {0}")]
    Login(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A private session bus; killed when dropped.
pub struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    /// Starts `dbus-daemon` listening on a socket in `dir`.
    pub fn start(dir: &Path) -> Result<Bus, SandboxError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let config = dir.join("bus.conf");
        let services = dir.join("services");
        std::fs::create_dir_all(&services).map_err(io_err(&services))?;
        let text = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir.join("bus").display(),
            services.display()
        );
        std::fs::write(&config, text).map_err(io_err(&config))?;
        // Its complaints (e.g. it cannot raise the fd limit in a container) go to a log, not
        // into the demo's or a test's output.
        let log_path = dir.join("dbus-daemon.log");
        let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| SandboxError::Bus(e.to_string()))?;
        // dbus-daemon prints its address once it listens: that line is the readiness signal.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|e| SandboxError::Bus(e.to_string()))?;
        let address = line.trim().to_string();
        if address.is_empty() {
            let _ = child.kill();
            return Err(SandboxError::Bus(
                "it exited without printing an address".into(),
            ));
        }
        Ok(Bus { child, address })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn connect(&self) -> Result<zbus::Connection, SandboxError> {
        Ok(zbus::connection::Builder::address(self.address.as_str())?
            .build()
            .await?)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Knobs for a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The `dbxportd` binary to run.
    pub dbxportd: PathBuf,
    /// Config written for the daemon; the Dropbox URLs are pointed at the emulator.
    pub config: Config,
    /// When running as root, start the daemon without the capabilities that let root read any
    /// file, so it sees file permissions as a normal user does.
    pub drop_root_file_access: bool,
    /// `RUST_LOG` for the daemon.
    pub log_filter: String,
    /// Run the daemon with a `/tmp` of its own, as systemd's `PrivateTmp=yes` does (see
    /// [`PRIVATE_TMP`]); the sandbox's own folder stays visible to it where it is.
    pub private_tmp: bool,
}

/// Gives the daemon a `/tmp` of its own, as systemd's `PrivateTmp=yes` does: in a mount
/// namespace of its own (`unshare --mount`; as a user who is not root, inside a user
/// namespace mapping only that user), an empty tmpfs on `/tmp`. The sandbox's folder
/// (`$DBXPORT_SANDBOX`, under `/tmp` in most test runs) is bound back at its own path through a
/// descriptor opened before the tmpfs hid it (`--no-canonicalize`, or `mount` would resolve
/// the descriptor's path into the new, empty `/tmp`). So is the folder holding the daemon's
/// binary (`$DBXPORT_BIN_DIR`): a checkout, and so its `target/`, may itself live under `/tmp`
/// (a CI clone), where the tmpfs would hide it. Then the daemon's command runs.
pub const PRIVATE_TMP: &str = "exec 3<\"$DBXPORT_SANDBOX\" 4<\"$DBXPORT_BIN_DIR\" && \
    mount -t tmpfs -o mode=1777 dbxport-private-tmp /tmp && \
    mkdir -p \"$DBXPORT_SANDBOX\" \"$DBXPORT_BIN_DIR\" && \
    mount --no-canonicalize --bind /proc/self/fd/3 \"$DBXPORT_SANDBOX\" && \
    mount --no-canonicalize --bind /proc/self/fd/4 \"$DBXPORT_BIN_DIR\" && \
    exec 3<&- 4<&- && exec \"$@\"";

impl SandboxOptions {
    pub fn new(dbxportd: PathBuf) -> SandboxOptions {
        let mut config = Config::default();
        // Most sandboxes have no Secret Service; those that test the keyring start one and
        // ask for it.
        config.credentials.store = dbxport::config::CredentialStoreKind::File;
        SandboxOptions {
            dbxportd,
            config,
            drop_root_file_access: true,
            log_filter: "info,dbxport=debug".into(),
            private_tmp: false,
        }
    }
}

/// Bus + emulator + daemon, in `root`.
pub struct Sandbox {
    pub root: PathBuf,
    pub bus: Bus,
    pub emulator: Emulator,
    options: SandboxOptions,
    daemon: DaemonProcess,
    keyring: DaemonProcess,
}

/// The daemon's process; killed when dropped, so a failing test leaves nothing behind.
#[derive(Default)]
struct DaemonProcess(Option<Child>);

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sandbox {
    /// Starts the bus and the emulator, writes the daemon's config; the daemon itself starts
    /// with [`Sandbox::start_daemon`].
    pub async fn start(root: &Path, options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let bus = Bus::start(&root.join("bus"))?;
        let emulator = Emulator::start(EmulatorConfig {
            root: root.join("dropbox"),
            port: 0,
            access_token: None,
            app_key: Some("dbxport-sandbox".into()),
        })
        .await
        .map_err(|e| SandboxError::Emulator(e.to_string()))?;
        let sandbox = Sandbox {
            root: root.to_path_buf(),
            bus,
            emulator,
            options,
            daemon: DaemonProcess::default(),
            keyring: DaemonProcess::default(),
        };
        sandbox.write_config()?;
        for dir in ["home", "config", "state", "cache", "run"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        // As a real XDG_RUNTIME_DIR is: Qt (the KDE hosts) and GLib complain of anything else.
        let run = root.join("run");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io_err(&run))?;
        Ok(sandbox)
    }

    fn write_config(&self) -> Result<(), SandboxError> {
        let mut config = self.options.config.clone();
        config.dropbox.api_url = self.emulator.base_url();
        config.dropbox.content_url = self.emulator.base_url();
        config.dropbox.authorize_url = format!("{}/oauth2/authorize", self.emulator.base_url());
        config.dropbox.app_key = Some("dbxport-sandbox".into());
        let path = self.root.join("config/dbxport/config.toml");
        std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(io_err(&path))?;
        std::fs::write(&path, config.to_toml()).map_err(io_err(&path))
    }

    /// The environment every process of this sandbox runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        let dir = |d: &str| self.root.join(d).display().to_string();
        vec![
            ("HOME".into(), dir("home")),
            ("XDG_CONFIG_HOME".into(), dir("config")),
            ("XDG_STATE_HOME".into(), dir("state")),
            ("XDG_CACHE_HOME".into(), dir("cache")),
            ("XDG_RUNTIME_DIR".into(), dir("run")),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                self.bus.address().to_string(),
            ),
            // The private bus stands for the system bus too (NetworkManager, UPower): a
            // sandboxed daemon must never hear the machine's own.
            (
                "DBUS_SYSTEM_BUS_ADDRESS".into(),
                self.bus.address().to_string(),
            ),
        ]
    }

    /// A command with this sandbox's environment (and no display, so nothing opens a browser).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.env())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("dbxportd.log")
    }

    /// Starts `dbxportd` and waits until it owns its bus name.
    pub async fn start_daemon(&mut self) -> Result<(), SandboxError> {
        if self.daemon.0.is_some() {
            return Err(SandboxError::Daemon("already running".into()));
        }
        let log_path = self.daemon_log();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let root = unsafe { libc::geteuid() } == 0;
        let unprivileged = self.options.drop_root_file_access && root;
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if self.options.private_tmp {
            argv.push("unshare".into());
            if !root {
                argv.extend(["--user".into(), "--map-current-user".into()]);
            }
            argv.extend(
                [
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    PRIVATE_TMP,
                    "sh",
                ]
                .map(Into::into),
            );
        }
        if unprivileged {
            argv.extend(
                [
                    "setpriv",
                    "--inh-caps=-dac_override,-dac_read_search",
                    "--bounding-set=-dac_override,-dac_read_search",
                    "--",
                ]
                .map(Into::into),
            );
        }
        argv.push(self.options.dbxportd.clone().into());
        let mut command = self.command(&argv[0]);
        command.args(&argv[1..]).env("DBXPORT_SANDBOX", &self.root);
        if self.options.private_tmp {
            let bin_dir = self
                .options
                .dbxportd
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            command.env("DBXPORT_BIN_DIR", bin_dir);
        }
        let child = command
            .env("RUST_LOG", &self.options.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err(&log_path))?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                SandboxError::Daemon(format!("{}: {e}", self.options.dbxportd.display()))
            })?;
        self.daemon.0 = Some(child);
        self.wait_for_name().await
    }

    async fn wait_for_name(&mut self) -> Result<(), SandboxError> {
        self.wait_for_owner(BUS_NAME, |s| &mut s.daemon).await
    }

    /// Polls (with a deadline) until `name` has an owner on the bus, failing early with the
    /// process's log if the process that should take it exits.
    async fn wait_for_owner(
        &mut self,
        name: &str,
        process: fn(&mut Sandbox) -> &mut DaemonProcess,
    ) -> Result<(), SandboxError> {
        let conn = self.bus.connect().await?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let bus_name =
            zbus::names::BusName::try_from(name.to_string()).map_err(zbus::Error::from)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if dbus
                .name_has_owner(bus_name.clone())
                .await
                .map_err(zbus::Error::from)?
            {
                return Ok(());
            }
            let daemon_log = self.daemon_log();
            if let Some(child) = process(self).0.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                process(self).0 = None;
                let log = std::fs::read_to_string(daemon_log).unwrap_or_default();
                return Err(SandboxError::Daemon(format!(
                    "the process for {name} exited ({status}):\n{log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Daemon(format!(
                    "nobody took {name} within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts gnome-keyring's Secret Service on this sandbox's bus, with an unlocked login
    /// keyring in this sandbox's home, and waits until it owns `org.freedesktop.secrets`.
    pub async fn start_keyring(&mut self) -> Result<(), SandboxError> {
        use std::io::Write;
        let log_path = self.root.join("gnome-keyring.log");
        let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
        let mut child = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(io_err(&log_path))?)
            .stderr(log)
            .spawn()
            .map_err(|e| SandboxError::Keyring(format!("gnome-keyring-daemon: {e}")))?;
        // The login keyring's password, on stdin without a newline; then EOF.
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(b"sandbox-keyring-password")
            .map_err(io_err(&log_path))?;
        drop(stdin);
        self.keyring.0 = Some(child);
        self.wait_for_owner("org.freedesktop.secrets", |s| &mut s.keyring)
            .await
    }

    /// Stops the Secret Service (as when the user's session ends).
    pub fn stop_keyring(&mut self) {
        self.keyring = DaemonProcess::default();
    }

    /// Hands the emulator's access token to the daemon (`LoginWithToken`).
    pub async fn login(&self) -> Result<String, SandboxError> {
        let conn = self.bus.connect().await?;
        let account = AccountProxy::new(&conn).await?;
        account
            .login_with_token("access".into(), self.emulator.access_token())
            .await
            .map_err(|e| SandboxError::Login(dbxport::cli::describe(&e)))
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.0.as_ref().map(Child::id)
    }

    /// `kill -9`: the daemon gets no chance to clean up.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the way systemd stops it.
    pub fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.daemon.0.take()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().ok()
    }

    /// Stops the daemon and the emulator.
    pub async fn shutdown(mut self) {
        self.stop_daemon();
        let Sandbox { emulator, .. } = self;
        emulator.shutdown().await;
    }
}
