//! `dbxportctl completions` / `man`: the shell completions and the man page, generated from
//! the argument definitions (`Cli`) so they never disagree with the program; `install` puts
//! them where shells and `man` look.

use clap::CommandFactory;

use super::{Cli, Exit, term};

/// The completion script for `shell`, from the argument definitions.
pub fn completion(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dbxportctl", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page (roff), from the argument definitions: one page with everything. clap_mangen
/// lists subcommands as pages of their own (`dbxportctl-upload(1)`), which are not shipped:
/// the list points to the COMMANDS section instead, which holds each subcommand's full help
/// (options included), followed by the exit status, files, environment and examples.
pub fn man_page() -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("rendering into memory does not fail");
    let mut page = String::from_utf8_lossy(&out).into_owned();
    let mut fixed = String::with_capacity(page.len());
    for line in page.lines() {
        match line
            .strip_prefix("dbxportctl\\-")
            .and_then(|rest| rest.strip_suffix("(1)"))
        {
            Some(name) => fixed.push_str(&format!("\\fBdbxportctl {name}\\fR (see COMMANDS)")),
            None => fixed.push_str(line),
        }
        fixed.push('\n');
    }
    page = fixed;
    page.push_str(".SH COMMANDS\n");
    let mut cli = Cli::command();
    cli.build();
    for sub in cli.get_subcommands() {
        commands_section(&mut page, sub, "dbxportctl");
    }
    page.push_str(MAN_TAIL);
    page
}

/// A subcommand's full help, as `dbxportctl help CMD` shows it, kept as preformatted text.
fn commands_section(page: &mut String, cmd: &clap::Command, parent: &str) {
    if cmd.get_name() == "help" {
        return;
    }
    let name = format!("{parent} {}", cmd.get_name());
    page.push_str(&format!(".SS \"{}\"\n.nf\n", roff_text(&name)));
    let help = cmd.clone().bin_name(&name).render_long_help().to_string();
    for line in help.lines() {
        page.push_str(&roff_text(line));
        page.push('\n');
    }
    page.push_str(".fi\n");
    for sub in cmd.get_subcommands() {
        commands_section(page, sub, &name);
    }
}

/// Text safe in roff: backslashes doubled, a leading dot or quote kept from being a request.
fn roff_text(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The sections after the commands, which the argument definitions do not hold.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
.TP
0
Everything asked for was done; also when stdout was closed early (\fBdbxportctl jobs | head \-1\fR).
.TP
1
The request could not be made: the daemon is unreachable, the call was refused, a configuration error.
.TP
2
Wrong usage, including option values checked before asking the daemon (\fB\-\-quality 150\fR).
.TP
3
Some files were refused or some jobs failed; the rest were handled.
.TP
4
Jobs were cancelled while waiting for them.
.TP
5
\fBaccount\fR: no Dropbox account is linked.
.TP
130
Ctrl\-C while waiting: the uploads go on in the daemon.
.SH FILES
.TP
\fI$XDG_CONFIG_HOME/dbxport/config.toml\fR
The daemon's settings (\fBdbxportctl config\fR); read when the daemon starts (\fBdbxportctl restart\fR applies a change).
.TP
\fI$XDG_STATE_HOME/dbxport/queue.sled\fR
The queue: jobs, batches, watches and what each watch has sent.
.TP
\fI$XDG_STATE_HOME/dbxport/credentials.json\fR
The login, when \fBcredentials.store = "file"\fR (mode 0600); otherwise it is in the keyring.
.TP
\fI$XDG_CACHE_HOME/dbxport\fR
Resized copies being sent.
.SH ENVIRONMENT
.TP
\fBDBUS_SESSION_BUS_ADDRESS\fR
The session bus on which \fBdbxportctl\fR finds \fBdbxportd\fR.
.TP
\fBXDG_CONFIG_HOME\fR, \fBXDG_STATE_HOME\fR, \fBXDG_CACHE_HOME\fR
Where the files above are.
.TP
\fBNO_COLOR\fR
No colour in the daemon's log, even on a terminal.
.TP
\fBRUST_LOG\fR
The daemon's log level (default \fBinfo\fR).
.SH EXAMPLES
.nf
dbxportctl login
dbxportctl upload ~/Pictures/2024/*.jpg \-\-to /Photos/2024 \-\-wait
batch=$(dbxportctl upload \-\-resize 2048 IMG_*.JPG)
dbxportctl jobs \-\-batch "$batch" \-\-state failed
dbxportctl retry "$batch"
dbxportctl watch add ~/Camera \-\-to /Camera \-\-recursive
dbxportctl status
dbxportctl jobs clean \-\-older\-than 7d
.fi
.SH "SEE ALSO"
\fBdbxportd\fR(1), the README (https://github.com/dbxport/dbxport)
"#;

/// `dbxportctl completions SHELL`.
pub fn print_completion(shell: clap_complete::Shell) -> Exit {
    term::write_stdout_raw(completion(shell).as_bytes());
    Exit::Ok
}

/// `dbxportctl man`.
pub fn print_man() -> Exit {
    term::write_stdout_raw(man_page().as_bytes());
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_holds_every_command_and_points_to_no_missing_page() {
        let page = man_page();
        for section in [
            ".SH COMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "{section}");
        }
        for command in ["upload", "jobs clean", "watch rm", "config set", "restart"] {
            assert!(
                page.contains(&format!(".SS \"dbxportctl {command}\"")),
                "{command}"
            );
        }
        assert!(page.contains("\\-\\-quality"), "options are in");
        assert!(
            !page.contains("dbxportctl\\-upload(1)"),
            "no page that is not shipped"
        );
    }
}
