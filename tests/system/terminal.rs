//! `dbxportctl` in a real terminal: a pseudo-terminal of 80 columns, as a person's terminal
//! window is by default, and Ctrl-C during `upload --wait`. What is checked is what a person
//! sees: every line the terminal shows fits its width, and an interrupted wait says that the
//! uploads go on and how to follow them.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::helper::{DEADLINE, make_photos, small_config, system_test, world};

/// A pseudo-terminal of `cols` columns: (the side a program writes to, the side we read).
fn pty(cols: u16) -> (OwnedFd, OwnedFd) {
    let size = libc::winsize {
        ws_row: 24,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    unsafe { (OwnedFd::from_raw_fd(slave), OwnedFd::from_raw_fd(master)) }
}

/// Runs `command` with stdout and stderr on an 80-column terminal; returns its exit code and
/// everything the terminal received.
fn run_in_terminal(mut command: Command) -> (Option<i32>, String) {
    let (slave, master) = pty(80);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = command.spawn().unwrap();
    // Our copies of the terminal's program side are gone with `command`: once the program
    // exits, reading the other side ends (EIO).
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    let status = child.wait().unwrap();
    let output = reader.join().unwrap();
    (status.code(), String::from_utf8_lossy(&output).into_owned())
}

/// What an 80-column terminal does with `raw`, reduced to what a reader sees: the text of each
/// row as it is left, and the start of every row the terminal began because text ran past the
/// right edge. Progress bars are drawn as rows padded to the full width, so a wrap after a
/// full row is how they reach the next row; a row that *starts* with the middle of something
/// is a line that did not fit.
struct Screen {
    width: usize,
    row: Vec<char>,
    col: usize,
    pending_wrap: bool,
    rows: Vec<String>,
    wrapped_starts: Vec<String>,
    in_wrapped_row: bool,
}

impl Screen {
    fn new(width: usize) -> Screen {
        Screen {
            width,
            row: vec![' '; width],
            col: 0,
            pending_wrap: false,
            rows: Vec::new(),
            wrapped_starts: Vec::new(),
            in_wrapped_row: false,
        }
    }

    /// The cursor leaves its row (a newline, a move, a wrap): the row is what it shows.
    fn leave_row(&mut self) {
        let text: String = self.row.iter().collect();
        if !text.trim().is_empty() {
            if self.in_wrapped_row {
                self.wrapped_starts
                    .push(text.trim_start().chars().take(20).collect());
            }
            self.rows.push(text.trim_end().to_string());
        }
        self.row = vec![' '; self.width];
        self.in_wrapped_row = false;
        self.pending_wrap = false;
    }

    fn feed(&mut self, raw: &str) {
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' if chars.peek() == Some(&'[') => {
                    chars.next();
                    let mut params = String::new();
                    let mut end = ' ';
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            end = c;
                            break;
                        }
                        params.push(c);
                    }
                    match end {
                        'K' => {
                            let from = if params == "2" { 0 } else { self.col };
                            for cell in &mut self.row[from..] {
                                *cell = ' ';
                            }
                        }
                        'A' | 'B' | 'E' | 'F' | 'H' | 'J' => self.leave_row(),
                        'G' => {
                            self.col = params.parse::<usize>().unwrap_or(1).saturating_sub(1);
                            self.pending_wrap = false;
                        }
                        // Colours (`m`) and the rest change nothing a reader counts.
                        _ => {}
                    }
                }
                '\r' => {
                    self.col = 0;
                    self.pending_wrap = false;
                }
                '\n' => self.leave_row(),
                c if c.is_control() => {}
                c => {
                    if self.pending_wrap {
                        self.leave_row();
                        self.in_wrapped_row = true;
                        self.col = 0;
                    }
                    self.row[self.col] = c;
                    if self.col + 1 == self.width {
                        self.pending_wrap = true;
                    } else {
                        self.col += 1;
                    }
                }
            }
        }
        self.leave_row();
    }
}

#[system_test]
async fn upload_wait_in_an_80_column_terminal_fits_every_line() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    // Long names and a deep folder: what made lines wrap before.
    let photos: Vec<_> = make_photos(&dir, 30)
        .into_iter()
        .map(|p| {
            let long = dir.join(format!(
                "holiday-in-the-mountains-with-the-whole-family-{}",
                p.file_name().unwrap().to_string_lossy()
            ));
            std::fs::rename(&p, &long).unwrap();
            long
        })
        .collect();
    let mut command = w.sandbox.command(env!("CARGO_BIN_EXE_dbxportctl"));
    command
        .args([
            "upload",
            "--wait",
            "--to",
            "/Photos/2026/Holidays in the mountains with the whole family",
        ])
        .args(&photos)
        .env("TERM", "xterm-256color");
    let (code, raw) = tokio::task::spawn_blocking(move || run_in_terminal(command))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{raw}");
    let mut screen = Screen::new(80);
    screen.feed(&raw);
    assert!(
        screen.rows.iter().any(|l| l.contains("30 uploaded")),
        "the result is shown: {:#?}",
        screen.rows
    );
    assert!(
        !screen.wrapped_starts.is_empty(),
        "the bars were drawn: {raw:?}"
    );
    // Every row a wrap began starts a bar (the batch's, or a file's, named from its start):
    // never the tail of a line that did not fit.
    for start in &screen.wrapped_starts {
        let begins_a_bar = start.starts_with("holiday-")
            || start
                .split('/')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok());
        assert!(
            begins_a_bar,
            "a row begins with the rest of a line too wide for 80 columns: {start:?}\nrows: {:#?}",
            screen.rows
        );
    }
}

#[system_test]
async fn ctrl_c_during_a_wait_says_the_uploads_go_on_and_how_to_follow_them() {
    let w = world(small_config()).await;
    // Paused: the batch cannot end while we wait, so the interruption is what ends the wait.
    assert!(w.ctl(&["pause"]).status.success());
    let photos = make_photos(&w.photo_dir(), 3);
    let mut child = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["upload", "--wait", "--to", "/Interrupted"])
        .args(&photos)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The batch id comes on stdout once the files are queued: then the wait has begun.
    let mut stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            seen.push(byte[0]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let first = tokio::time::timeout(DEADLINE, first)
        .await
        .expect("the batch is queued")
        .unwrap();
    let batch: u64 = first
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a batch id on stdout: {first:?}"));
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("uploads go on in dbxportd")
            && stderr.contains(&format!("dbxportctl jobs --batch {batch}")),
        "{stderr}"
    );
    // And they do: the batch's jobs are still there, waiting for the resume.
    let listed = w.ctl(&["jobs", "--batch", &batch.to_string()]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches("queued").count(), 3, "{listed}");
}
