//! Logging set-up shared by both binaries: `RUST_LOG` (default `info`) to stderr, which
//! systemd's journal captures. Tokens never reach a log line: they are `Secret`s.

pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Colour codes only where a terminal shows them: a log redirected to a file, or the
    // journal, gets plain text (and NO_COLOR is honoured).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if under_journal {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(colour).init();
    }
}
