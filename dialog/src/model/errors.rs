//! The daemon's answers that went wrong, as the window says them: every failed call ends up
//! here, so no error is left to a terminal.

use dbxport::service::ServiceError;

/// What went wrong with a call, in the window's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// dbxportd is not on the bus and D-Bus activation could not start it.
    DaemonUnreachable(String),
    /// The call needs an account.
    NotLoggedIn(String),
    /// A name or path the daemon refused before calling Dropbox.
    Refused(String),
    /// Anything else, with the daemon's reason.
    Failed(String),
}

impl Trouble {
    /// The text the window shows.
    pub fn message(&self) -> &str {
        match self {
            Trouble::DaemonUnreachable(m)
            | Trouble::NotLoggedIn(m)
            | Trouble::Refused(m)
            | Trouble::Failed(m) => m,
        }
    }
}

/// The words for a daemon that cannot be reached, with what to do.
pub fn unreachable_message(detail: &str) -> String {
    crate::i18n::tr(
        "dbxport's service cannot be reached ({detail}). Install it with “dbxportctl install”, or start it with “systemctl --user start dbxport”.",
    )
    .replace("{detail}", detail)
}

/// A failed call's error, classified.
pub fn classify(e: &ServiceError) -> Trouble {
    match e {
        ServiceError::NotLoggedIn(m) | ServiceError::LoginRefused(m) => {
            Trouble::NotLoggedIn(m.clone())
        }
        ServiceError::InvalidArgument(m) | ServiceError::InvalidPath(m) => {
            Trouble::Refused(m.clone())
        }
        ServiceError::NotFound(m) | ServiceError::Failed(m) => Trouble::Failed(m.clone()),
        ServiceError::ZBus(e) => zbus_trouble(e),
    }
}

/// An error from the bus itself (not the daemon's answer).
pub fn zbus_trouble(e: &zbus::Error) -> Trouble {
    match e {
        zbus::Error::MethodError(name, detail, _) => {
            let name = name.as_str();
            let away = name == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
                || name == "org.freedesktop.DBus.Error.NoReply"
                || name.starts_with("org.freedesktop.DBus.Error.Spawn");
            let detail = detail.clone().unwrap_or_else(|| name.to_owned());
            if away {
                Trouble::DaemonUnreachable(unreachable_message(&detail))
            } else {
                Trouble::Failed(detail)
            }
        }
        zbus::Error::InputOutput(e) => {
            Trouble::DaemonUnreachable(unreachable_message(&e.to_string()))
        }
        other => Trouble::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::names::OwnedErrorName;

    fn method_error(name: &str, detail: &str) -> ServiceError {
        ServiceError::ZBus(zbus::Error::MethodError(
            OwnedErrorName::try_from(name).unwrap(),
            Some(detail.into()),
            zbus::message::Message::method_call("/", "M")
                .unwrap()
                .build(&())
                .unwrap(),
        ))
    }

    #[test]
    fn each_failure_becomes_what_the_window_says() {
        let t = classify(&method_error(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "The name is not activatable",
        ));
        assert!(matches!(t, Trouble::DaemonUnreachable(_)));
        assert!(t.message().contains("The name is not activatable"));
        assert!(t.message().contains("dbxportctl install"));
        assert!(matches!(
            classify(&method_error(
                "org.freedesktop.DBus.Error.Spawn.ChildExited",
                "exit 1"
            )),
            Trouble::DaemonUnreachable(_)
        ));
        assert_eq!(
            classify(&ServiceError::NotLoggedIn("log in first".into())),
            Trouble::NotLoggedIn("log in first".into())
        );
        assert_eq!(
            classify(&ServiceError::InvalidArgument("bad name".into())),
            Trouble::Refused("bad name".into())
        );
        assert_eq!(
            classify(&ServiceError::Failed("Dropbox did not answer".into())),
            Trouble::Failed("Dropbox did not answer".into())
        );
        assert!(matches!(
            classify(&method_error("org.example.Other", "odd")),
            Trouble::Failed(m) if m == "odd"
        ));
    }
}
