//! The Account row: who is logged in and how full their Dropbox is, or why no one is; and
//! the browser login's course (BeginLogin, then the LoginFinished signal).

/// What the Account row shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Account {
    /// The first answer has not come yet.
    Connecting,
    /// The daemon cannot be reached (or started by D-Bus activation); why, in words.
    Unreachable { message: String },
    /// No account linked (or Dropbox no longer accepts it); the daemon's reason, if any.
    LoggedOut { reason: String },
    /// A browser login is under way: the page the browser was sent to.
    LoggingIn { url: String },
    LoggedIn {
        name: String,
        email: String,
        /// Bytes used and the quota; 0 until the daemon knows.
        used: u64,
        allocated: u64,
    },
}

/// What the account heard from the daemon or the user.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    /// The Account interface's properties, read (at start, after a login, on a change).
    Properties {
        logged_in: bool,
        name: String,
        email: String,
        used: u64,
        allocated: u64,
        status_message: String,
    },
    /// A call failed because the daemon is not there.
    Unreachable(String),
    /// BeginLogin answered with the page to open.
    LoginStarted { url: String },
    /// BeginLogin itself failed.
    LoginRefused(String),
    /// The LoginFinished signal.
    LoginFinished { ok: bool, error: String },
}

impl Account {
    /// The one place the Account row changes.
    pub fn apply(self, event: AccountEvent) -> Account {
        match (self, event) {
            (
                _,
                AccountEvent::Properties {
                    logged_in: true,
                    name,
                    email,
                    used,
                    allocated,
                    ..
                },
            ) => Account::LoggedIn {
                name,
                email,
                used,
                allocated,
            },
            // Properties read while the browser is still open say "logged out": the login
            // goes on until LoginFinished.
            (
                state @ Account::LoggingIn { .. },
                AccountEvent::Properties {
                    logged_in: false, ..
                },
            ) => state,
            (
                _,
                AccountEvent::Properties {
                    logged_in: false,
                    status_message,
                    ..
                },
            ) => Account::LoggedOut {
                reason: status_message,
            },
            (_, AccountEvent::Unreachable(message)) => Account::Unreachable { message },
            (_, AccountEvent::LoginStarted { url }) => Account::LoggingIn { url },
            (_, AccountEvent::LoginRefused(reason)) => Account::LoggedOut { reason },
            // Success: the properties are read next and fill the row in.
            (state, AccountEvent::LoginFinished { ok: true, .. }) => state,
            (_, AccountEvent::LoginFinished { ok: false, error }) => {
                Account::LoggedOut { reason: error }
            }
        }
    }

    /// Share of the quota used, for the level bar (None while unknown).
    pub fn used_fraction(&self) -> Option<f64> {
        match self {
            Account::LoggedIn {
                used, allocated, ..
            } if *allocated > 0 => Some((*used as f64 / *allocated as f64).clamp(0.0, 1.0)),
            _ => None,
        }
    }

    /// Free bytes, when known.
    pub fn free(&self) -> Option<u64> {
        match self {
            Account::LoggedIn {
                used, allocated, ..
            } if *allocated > 0 => Some(allocated.saturating_sub(*used)),
            _ => None,
        }
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(self, Account::LoggedIn { .. })
    }

    /// Why Start cannot go ahead because of the account, in words (None: it can).
    pub fn blocks_start(&self, total_size: u64) -> Option<String> {
        use crate::i18n::tr;
        match self {
            Account::Connecting => Some(tr("Connecting to dbxport…")),
            Account::Unreachable { message } => Some(message.clone()),
            Account::LoggedOut { .. } | Account::LoggingIn { .. } => {
                Some(tr("Not logged in: log in to Dropbox first."))
            }
            Account::LoggedIn { .. } => match self.free() {
                Some(free) if total_size > free => Some(
                    tr("Dropbox is full: these photos need {need} and the account has {free} free. Free some space, or remove photos.")
                        .replace("{need}", &super::human_size(total_size))
                        .replace("{free}", &super::human_size(free)),
                ),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(logged_in: bool) -> AccountEvent {
        AccountEvent::Properties {
            logged_in,
            name: if logged_in { "Ada" } else { "" }.into(),
            email: if logged_in { "ada@example.com" } else { "" }.into(),
            used: 250,
            allocated: 1000,
            status_message: if logged_in { "" } else { "no account linked" }.into(),
        }
    }

    #[test]
    fn login_through_the_browser_fills_the_row_in() {
        let a = Account::Connecting.apply(props(false));
        assert_eq!(
            a,
            Account::LoggedOut {
                reason: "no account linked".into()
            }
        );
        assert!(a.blocks_start(1).unwrap().contains("Not logged in"));
        let a = a.apply(AccountEvent::LoginStarted {
            url: "https://example.com/oauth".into(),
        });
        // A property read during the login does not undo it.
        let a = a.apply(props(false));
        assert!(matches!(a, Account::LoggingIn { .. }));
        let a = a
            .apply(AccountEvent::LoginFinished {
                ok: true,
                error: String::new(),
            })
            .apply(props(true));
        assert_eq!(
            a,
            Account::LoggedIn {
                name: "Ada".into(),
                email: "ada@example.com".into(),
                used: 250,
                allocated: 1000
            }
        );
        assert_eq!(a.used_fraction(), Some(0.25));
        assert_eq!(a.free(), Some(750));
        assert_eq!(a.blocks_start(750), None);
    }

    #[test]
    fn a_failed_login_an_absent_daemon_and_a_full_dropbox_are_said() {
        let a = Account::LoggingIn { url: "u".into() }.apply(AccountEvent::LoginFinished {
            ok: false,
            error: "the user denied access".into(),
        });
        assert_eq!(
            a,
            Account::LoggedOut {
                reason: "the user denied access".into()
            }
        );
        let a = a.apply(AccountEvent::Unreachable("dbxport is not running".into()));
        assert_eq!(a.blocks_start(1).unwrap(), "dbxport is not running");
        let full = Account::Connecting.apply(props(true));
        let why = full.blocks_start(751).unwrap();
        assert!(why.starts_with("Dropbox is full"), "{why}");
        assert!(why.contains("751 B") && why.contains("750 B"), "{why}");
        // Unknown quota: nothing to say.
        let unknown = Account::LoggedIn {
            name: "A".into(),
            email: String::new(),
            used: 0,
            allocated: 0,
        };
        assert_eq!(unknown.used_fraction(), None);
        assert_eq!(unknown.blocks_start(u64::MAX), None);
    }
}
