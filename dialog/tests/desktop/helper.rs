//! A desktop for one test: Xvfb on a free display, the AT-SPI bus on the sandbox's session
//! bus, the dialog started with files, and the Python driver run against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbxport::config::Config;
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};

/// Every test here runs under it: see the test kit.
pub use dbxport_testkit::system_test;

pub const DEADLINE: Duration = Duration::from_secs(90);

/// The daemon the sandbox runs: the workspace's own, built beside this test's binary
/// (`cargo test --workspace` builds every package's binaries first).
fn dbxportd() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_dbxport-export"));
    let daemon = exe.with_file_name("dbxportd");
    assert!(
        daemon.is_file(),
        "{} is missing: build it first (cargo build -p dbxport --bins)",
        daemon.display()
    );
    daemon
}

/// The sandbox's config: the login in a file (no keyring needed), a free port for the
/// browser login's redirect.
pub fn config() -> Config {
    let mut config = Config::default();
    config.credentials.store = dbxport::config::CredentialStoreKind::File;
    config.upload.remote_folder = "/Default".into();
    config.dropbox.redirect_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    config
}

/// A sandbox whose daemon runs (logged in when `login`).
pub async fn sandbox(dir: &Path, login: bool) -> Sandbox {
    sandbox_with(dir, config(), login).await
}

pub async fn sandbox_with(dir: &Path, config: Config, login: bool) -> Sandbox {
    let mut sandbox = bare_sandbox(dir, config).await;
    sandbox.start_daemon().await.expect("dbxportd starts");
    if login {
        sandbox
            .login()
            .await
            .expect("login with the emulator's token");
    }
    sandbox
}

/// The bus and the emulator; no daemon runs.
pub async fn bare_sandbox(dir: &Path, config: Config) -> Sandbox {
    let mut options = SandboxOptions::new(dbxportd());
    options.config = config;
    options.log_filter = "debug".into();
    Sandbox::start(dir, options).await.expect("sandbox starts")
}

/// Lets the bus start dbxportd on the first call: the project's activation file, its `Exec=`
/// running the built daemon in the sandbox's directories (an activated process inherits the
/// bus's environment, not the test's).
pub fn make_activatable(sandbox: &Sandbox) {
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dbus/io.github.dbxport1.service"
    ))
    .unwrap();
    let env: Vec<String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let exec = format!(
        "Exec=/usr/bin/env {} RUST_LOG=info {}",
        env.join(" "),
        dbxportd().display()
    );
    let text: Vec<String> = published
        .lines()
        .map(|line| match line.starts_with("Exec=") {
            true => exec.clone(),
            false => line.to_string(),
        })
        .collect();
    std::fs::write(
        sandbox.root.join("bus/services/io.github.dbxport1.service"),
        text.join("\n"),
    )
    .unwrap();
}

/// The pid of dbxportd on the sandbox's bus, if it runs.
pub async fn daemon_pid(sandbox: &Sandbox) -> Option<u32> {
    let conn = sandbox.bus.connect().await.expect("the sandbox's bus");
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    dbus.get_connection_unix_process_id("io.github.dbxport1".try_into().unwrap())
        .await
        .ok()
}

/// Stops a daemon the bus started (not the sandbox's child) when the test ends.
pub struct Reap(pub u32);

impl Drop for Reap {
    fn drop(&mut self) {
        // SAFETY: a plain signal to the daemon this test had the bus start.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGTERM);
        }
    }
}

/// Polls `check` until it returns Some, or panics naming `what` at the deadline.
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child killed with its process group when dropped (the AT-SPI launcher starts its own
/// bus daemon and registry beneath it).
pub struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        // SAFETY: signalling the process group this test started (process_group(0) below).
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

impl Group {
    /// The process's id (its group's too).
    #[allow(dead_code)] // the launch benchmark's (benches/launch.rs)
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }
}

fn spawn_group(command: &mut Command) -> Group {
    use std::os::unix::process::CommandExt;
    Group(
        command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}")),
    )
}

/// Xvfb and the AT-SPI bus for one sandbox.
pub struct Desktop {
    /// Xvfb's frame buffer as an XWD file (`-fbdir`): the screenshots are read from it.
    pub framebuffer: PathBuf,
    pub shots: PathBuf,
    env: Vec<(String, String)>,
    // Dropped last: the dialog goes before the desktop it is on.
    _atspi: Group,
    _xvfb: Group,
}

impl Desktop {
    pub async fn start(sandbox: &Sandbox) -> Desktop {
        Desktop::start_sized(sandbox, 620, 820).await
    }

    /// With a screen of this size (HiDPI: the window's default size, doubled).
    pub async fn start_sized(sandbox: &Sandbox, width: u32, height: u32) -> Desktop {
        let fbdir = sandbox.root.join("xvfb");
        std::fs::create_dir_all(&fbdir).unwrap();
        // The screen is the window's default size, so a screenshot is the window.
        // -displayfd: Xvfb picks a free display and writes its number once it accepts
        // clients, which is both the free number and the readiness signal.
        let mut xvfb = Command::new("Xvfb");
        xvfb.args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .arg("-fbdir")
            .arg(&fbdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut xvfb = spawn_group(&mut xvfb);
        let mut line = String::new();
        let stdout = xvfb.0.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("Xvfb prints its display");
        let display = format!(":{}", line.trim());
        assert!(display.len() > 1, "Xvfb did not start (is xvfb installed?)");
        let mut env = sandbox.env();
        env.extend(
            [
                ("DISPLAY", display.as_str()),
                ("GDK_BACKEND", "x11"),
                ("GTK_A11Y", "atspi"),
                ("NO_AT_BRIDGE", "0"),
                ("GSETTINGS_BACKEND", "memory"),
                ("LANG", "C.UTF-8"),
                // No browser, no file manager: a URI the dialog opens goes nowhere.
                ("BROWSER", "true"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut launcher = Command::new("/usr/libexec/at-spi-bus-launcher");
        launcher
            .arg("--launch-immediately")
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let atspi = spawn_group(&mut launcher);
        let conn = sandbox.bus.connect().await.expect("the sandbox's bus");
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let start = Instant::now();
        while !dbus
            .name_has_owner("org.a11y.Bus".try_into().unwrap())
            .await
            .unwrap_or(false)
        {
            assert!(start.elapsed() < DEADLINE, "the AT-SPI bus did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dialog-shots");
        std::fs::create_dir_all(&shots).unwrap();
        Desktop {
            framebuffer: fbdir.join("Xvfb_screen0"),
            shots,
            env,
            _atspi: atspi,
            _xvfb: xvfb,
        }
    }

    /// Sets a variable for everything started on this desktop from now on (the dialog, the
    /// driver and what it starts).
    #[allow(dead_code)] // the launch benchmark's (benches/launch.rs)
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// The dialog, opened with `files` (its output goes to `log`).
    pub fn dialog(&self, files: &[PathBuf], log: &Path) -> Group {
        self.dialog_with(files, log, &[])
    }

    /// The dialog with more environment: a style, a scale, a log level.
    pub fn dialog_with(&self, files: &[PathBuf], log: &Path, extra: &[(&str, &str)]) -> Group {
        let log = std::fs::File::create(log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbxport-export"));
        command
            .args(files)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned())
            .envs(extra.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        spawn_group(&mut command)
    }

    /// Runs `drive.py scenario args…`; panics with its output when a step fails. Returns what
    /// it printed.
    pub async fn drive(&self, scenario: &str, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/desktop/drive.py");
        let mut command = tokio::process::Command::new("/usr/bin/python3");
        command
            .arg(script)
            .arg(scenario)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned())
            .env("SHOTS", &self.shots)
            .env("FRAMEBUFFER", &self.framebuffer)
            .kill_on_drop(true);
        let out = tokio::time::timeout(DEADLINE * 2, command.output())
            .await
            .expect("the driver finished in time")
            .expect("python3 with pyatspi runs (apt: python3-pyatspi)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "driver {scenario} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// The project's sample photos.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/photos")
}

/// Copies of sample photos larger than 1600 px, under new names, in `dir`.
pub fn large_photos(dir: &Path) -> Vec<PathBuf> {
    let samples = samples();
    std::fs::create_dir_all(dir).unwrap();
    [
        "IMG_20200608_111614.jpg",
        "Dragonfly_by_Bolly.jpg",
        "xmp_test.jpg",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        let to = dir.join(format!("photo-{i}.jpg"));
        std::fs::copy(samples.join(name), &to).unwrap();
        to
    })
    .collect()
}

/// The width and height of the JPEG the emulator stores at `path`.
pub fn stored_dimensions(sandbox: &Sandbox, path: &str) -> Option<(u32, u32)> {
    let file = sandbox
        .emulator
        .files()
        .into_iter()
        .find(|f| f.path_display == path)?;
    let blob = sandbox.root.join("dropbox/blobs").join(&file.rev);
    image::ImageReader::open(blob)
        .ok()?
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}
