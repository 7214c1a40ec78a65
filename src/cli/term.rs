//! What `dbxportctl` writes to a terminal or a pipe: text from outside (file names, paths,
//! the daemon's messages) with its control characters made visible, lines fitted to the
//! terminal's width, and stdout written so that a reader that went away (`| head -1`) ends the
//! command quietly instead of with a panic.
//!
//! File names are chosen by whoever wrote the files: a name holding ESC or BEL would otherwise
//! reach the terminal as a command (recolour, retitle, move the cursor, ring). So every name,
//! path and message printed goes through [`clean`] (one field) or the output macros (whole
//! lines, which call [`clean_text`]).

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// How much to say: `-q` keeps errors and results only, `-v` adds detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// Whether a character would act on a terminal rather than show: C0 and C1 controls, DEL,
/// and the Unicode line separators and bidirectional overrides (which reorder what follows
/// them, so a name could display as something it is not).
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every control character shown as an escape (`\x1b`, `\n`, `\u{202e}`), so a
/// file name can never command the terminal. Text without one is returned as it is.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_control(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`clean`] for text of several lines (a message listing files): the line breaks stay, every
/// other control character is escaped.
pub fn clean_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_control(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(clean).collect::<Vec<_>>().join("\n"))
}

/// Writes one line to stdout. A reader that has gone away (`dbxportctl jobs | head -1`) is
/// not an error of this command: it ends here, quietly, with exit status 0, as `cat` and `ls`
/// do. Any other write error ends it with status 1 and says why.
pub fn write_stdout(line: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(clean_text(line).as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        stdout_failed(e);
    }
}

/// Writes `value` as pretty JSON to stdout: what `--json` prints, one document a script can
/// read whole.
pub fn print_json(value: &impl serde::Serialize) {
    // The views are plain structs with string keys: serializing them cannot fail.
    let text = serde_json::to_string_pretty(value).expect("plain data serializes");
    write_stdout(&text);
}

/// Writes raw bytes (a man page, a completion script) to stdout, with the same rule for a
/// reader that went away.
pub fn write_stdout_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        stdout_failed(e);
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "dbxportctl: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere left to say it).
pub fn write_stderr(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(clean_text(line).as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// `println!` for results: control characters escaped, a closed stdout ends quietly.
macro_rules! outln {
    () => { $crate::cli::term::write_stdout("") };
    ($($arg:tt)*) => { $crate::cli::term::write_stdout(&format!($($arg)*)) };
}

/// `eprintln!` for what the user is told along the way; silent under `-q`.
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::cli::term::verbosity() >= $crate::cli::term::Verbosity::Normal {
            $crate::cli::term::write_stderr(&format!($($arg)*))
        }
    };
}

/// `eprintln!` for detail shown only with `-v`.
macro_rules! detail {
    ($($arg:tt)*) => {
        if $crate::cli::term::verbosity() >= $crate::cli::term::Verbosity::Verbose {
            $crate::cli::term::write_stderr(&format!($($arg)*))
        }
    };
}

/// `eprintln!` for warnings and errors: shown even under `-q`.
macro_rules! warnln {
    ($($arg:tt)*) => { $crate::cli::term::write_stderr(&format!($($arg)*)) };
}

pub(crate) use {detail, outln, say, warnln};

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Columns of the terminal on stdout (or stderr), or `None` when neither is one: lines to a
/// pipe or a file are not cut.
pub fn width() -> Option<usize> {
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: TIOCGWINSZ fills a winsize struct we own; a non-terminal fd just fails.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
            return Some(size.ws_col as usize);
        }
    }
    None
}

/// [`width`] when stderr is a terminal (a person reads it), else `None` (a pipe keeps whole
/// lines).
pub fn stderr_width() -> Option<usize> {
    std::io::stderr().is_terminal().then(width).flatten()
}

/// Holds the words of a name together for [`hanging`], which prints it as a space. A
/// control character: no text that went through [`clean`] holds one.
const GLUE: char = '\u{1f}';

/// `name` (a file name with spaces, "IMG 11.jpg") as one word for [`hanging`], which would
/// otherwise wrap inside it; cleaned of control characters as [`clean`] does.
pub fn unbroken(name: &str) -> String {
    clean(name).replace(' ', &GLUE.to_string())
}

/// `label` then `text`, its words wrapped to `width` columns (the terminal's, when there is
/// one) with the lines after the first indented under the text: a terminal cutting a long
/// line mid-word at column 80 is hard to read. Words longer than a line (a path, a command)
/// are kept whole, as are names marked [`unbroken`]. Without a width the line is left as it
/// is, for pipes and scripts.
pub fn hanging(label: &str, text: &str, width: Option<usize>) -> String {
    wrap(label, text, width).replace(GLUE, " ")
}

fn wrap(label: &str, text: &str, width: Option<usize>) -> String {
    let indent = label.chars().count();
    let Some(width) = width.filter(|w| *w > indent + 20) else {
        return format!("{label}{text}");
    };
    let mut out = String::from(label);
    let mut column = indent;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if column > indent && column + 1 + len > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else if column > indent {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    out
}

/// `name` cut to at most `max` characters, keeping its start and its end (where a camera's
/// number and the extension are) around an ellipsis.
pub fn shorten(name: &str, max: usize) -> Cow<'_, str> {
    let count = name.chars().count();
    if count <= max || max < 5 {
        return Cow::Borrowed(name);
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(count - tail).collect();
    Cow::Owned(format!("{start}…{end}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_wrap_at_words_under_their_text() {
        let text = "not logged in to Dropbox (no account has been linked yet): uploads wait for a login: run `dbxportctl login`";
        let wrapped = hanging("Note:     ", text, Some(80));
        assert_eq!(
            wrapped,
            "Note:     not logged in to Dropbox (no account has been linked yet): uploads\n          wait for a login: run `dbxportctl login`"
        );
        assert!(wrapped.lines().all(|l| l.chars().count() <= 80));
        // A pipe: as it is.
        assert_eq!(
            hanging("Note:     ", text, None),
            format!("Note:     {text}")
        );
        // A word longer than the line stays whole.
        let long = format!("see {}", "x".repeat(90));
        assert_eq!(
            hanging("a: ", &long, Some(40)),
            format!("a: see\n   {}", "x".repeat(90))
        );
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(clean("IMG_0001.jpg"), "IMG_0001.jpg");
        assert_eq!(clean("a\x1b[31mb\x07.jpg"), "a\\x1b[31mb\\x07.jpg");
        assert_eq!(clean("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(clean("x\u{9b}y\u{7f}"), "x\\x9by\\x7f");
        assert_eq!(clean("gpj.\u{202e}exe"), "gpj.\\u{202e}exe");
        assert_eq!(clean("café 写真.jpg"), "café 写真.jpg");
        assert_eq!(clean_text("one\ntwo\x1b"), "one\ntwo\\x1b");
    }

    #[test]
    fn long_names_keep_both_ends() {
        assert_eq!(shorten("IMG_0001.jpg", 20), "IMG_0001.jpg");
        let cut = shorten("a-very-long-holiday-photo-name-0001.jpg", 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(
            cut.starts_with("a-very-lo") && cut.ends_with("0001.jpg"),
            "{cut}"
        );
    }
}
