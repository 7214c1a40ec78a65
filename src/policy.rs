//! Policies for automatic uploads: files a watched folder found wait while the connection is
//! metered (NetworkManager's `Metered`) and, when configured, while the machine runs on
//! battery (UPower's `OnBattery`). Uploads someone asked for (an `Upload` call: dbxportctl, a
//! file manager) are never held — the user is there and chose to send them.
//!
//! Both services live on the system bus and are followed through their `PropertiesChanged`
//! signals, never polled. A service that is not there (a container, a minimal system, one
//! restarting) counts as "not metered" / "on AC": automatic export is the point of a watch, so
//! only a positive answer holds it. When its name gets an owner again, the property is read
//! afresh.
//!
//! The outcome is one value, [`Hold`], published on a `watch` channel: the engine reads it when
//! it claims a job (the queue skips watch jobs while it holds), and is woken when it changes;
//! D-Bus shows it as `AutoUploadsHeld`. A watch job already sending when the hold begins
//! finishes its file: photos are a few MB, and stopping mid-file would leave an upload session
//! to resume for little saved. One only claimed ahead to be prepared goes back to the queue
//! before its first byte (the engine checks the hold once it has a network slot).

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zbus::zvariant::OwnedValue;

use crate::config::PolicyConfig;

/// Whether automatic (watch-folder) uploads may run now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hold {
    #[default]
    None,
    Metered,
    OnBattery,
}

impl Hold {
    pub fn is_held(self) -> bool {
        self != Hold::None
    }

    /// As D-Bus and `dbxportctl status` show it: empty when nothing is held.
    pub fn reason(self) -> &'static str {
        match self {
            Hold::None => "",
            Hold::Metered => "metered connection",
            Hold::OnBattery => "on battery",
        }
    }
}

/// What the system services last said; `false` while a service is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conditions {
    pub metered: bool,
    pub on_battery: bool,
}

/// The one decision: which hold, if any, the conditions call for under `config`. Metered
/// comes first, as it costs the user money.
pub fn decide(config: &PolicyConfig, conditions: Conditions) -> Hold {
    if config.pause_watch_on_metered && conditions.metered {
        Hold::Metered
    } else if config.pause_watch_on_battery && conditions.on_battery {
        Hold::OnBattery
    } else {
        Hold::None
    }
}

/// NetworkManager's `NMMetered`: 0 unknown, 1 yes, 2 no, 3 guess-yes, 4 guess-no. A guess of
/// yes (a phone's hotspot) counts: that is the case the policy exists for.
pub fn nm_metered(value: u32) -> bool {
    matches!(value, 1 | 3)
}

/// The policy state: the conditions heard so far and the hold they make.
pub struct Policy {
    config: PolicyConfig,
    conditions: Mutex<Conditions>,
    hold: watch::Sender<Hold>,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Arc<Policy> {
        Arc::new(Policy {
            config,
            conditions: Mutex::new(Conditions::default()),
            hold: watch::Sender::new(Hold::None),
        })
    }

    pub fn hold(&self) -> Hold {
        *self.hold.borrow()
    }

    /// Changes of the hold (the engine wakes on them; D-Bus signals them).
    pub fn subscribe(&self) -> watch::Receiver<Hold> {
        self.hold.subscribe()
    }

    fn update(&self, change: impl FnOnce(&mut Conditions)) {
        let conditions = {
            let mut c = self.conditions.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut c);
            *c
        };
        let hold = decide(&self.config, conditions);
        let changed = self.hold.send_if_modified(|current| {
            let changed = *current != hold;
            *current = hold;
            changed
        });
        if changed {
            match hold {
                Hold::None => tracing::info!("watch-folder uploads may go again"),
                hold => tracing::info!("watch-folder uploads held: {}", hold.reason()),
            }
        }
    }

    /// Follows NetworkManager and UPower on the system bus (those the config asks for) until
    /// `shutdown`. No system bus at all is as if neither service were there.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.config.pause_watch_on_metered && !self.config.pause_watch_on_battery {
            return;
        }
        let conn = match zbus::Connection::system().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!("no system bus ({e}): automatic uploads are never held");
                return;
            }
        };
        // Each followed property sets one condition from its value (None: the service is gone).
        let followed: [(bool, Watched, SetCondition); 2] = [
            (
                self.config.pause_watch_on_metered,
                NETWORK_MANAGER,
                |value, c| {
                    c.metered = value
                        .and_then(|v| u32::try_from(v).ok())
                        .is_some_and(nm_metered);
                },
            ),
            (self.config.pause_watch_on_battery, UPOWER, |value, c| {
                c.on_battery = value.and_then(|v| bool::try_from(v).ok()) == Some(true);
            }),
        ];
        let mut tasks = Vec::new();
        for (wanted, watched, set) in followed {
            if !wanted {
                continue;
            }
            let policy = self.clone();
            tasks.push(tokio::spawn(follow(
                conn.clone(),
                watched,
                shutdown.clone(),
                move |value| policy.update(|c| set(value, c)),
            )));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// How a followed property's value (None: the service is gone) sets its condition.
type SetCondition = fn(Option<OwnedValue>, &mut Conditions);

/// One property of a system service.
#[derive(Debug, Clone, Copy)]
struct Watched {
    name: &'static str,
    path: &'static str,
    interface: &'static str,
    property: &'static str,
}

const NETWORK_MANAGER: Watched = Watched {
    name: "org.freedesktop.NetworkManager",
    path: "/org/freedesktop/NetworkManager",
    interface: "org.freedesktop.NetworkManager",
    property: "Metered",
};

const UPOWER: Watched = Watched {
    name: "org.freedesktop.UPower",
    path: "/org/freedesktop/UPower",
    interface: "org.freedesktop.UPower",
    property: "OnBattery",
};

/// Calls `apply` with the property's value now, on every change, and with None whenever the
/// service is gone; until `shutdown`.
async fn follow(
    conn: zbus::Connection,
    watched: Watched,
    shutdown: CancellationToken,
    apply: impl Fn(Option<OwnedValue>),
) {
    if let Err(e) = follow_inner(&conn, watched, &shutdown, &apply).await {
        tracing::debug!("stopped following {}: {e}", watched.name);
    }
    // No longer heard (the system bus went away, or shutting down): as if it were absent.
    apply(None);
}

async fn follow_inner(
    conn: &zbus::Connection,
    watched: Watched,
    shutdown: &CancellationToken,
    apply: &impl Fn(Option<OwnedValue>),
) -> zbus::Result<()> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(watched.name)?
        .path(watched.path)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Both streams exist before the first read, so a service appearing or a value changing in
    // between is not missed.
    let mut owners = props.inner().receive_owner_changed().await?;
    let mut changes = props.receive_properties_changed().await?;
    let read = || async {
        match props
            .get(watched.interface.try_into()?, watched.property)
            .await
        {
            Ok(value) => Ok::<_, zbus::Error>(Some(value)),
            Err(e) => {
                tracing::debug!("{} is not there ({e}): not holding for it", watched.name);
                Ok(None)
            }
        }
    };
    apply(read().await?);
    loop {
        tokio::select! {
            owner = owners.next() => match owner {
                Some(Some(_)) => {
                    tracing::debug!("{} appeared on the system bus", watched.name);
                    apply(read().await?);
                }
                Some(None) => {
                    tracing::debug!("{} left the system bus", watched.name);
                    apply(None);
                }
                None => return Ok(()),
            },
            change = changes.next() => {
                let Some(change) = change else { return Ok(()) };
                let Ok(args) = change.args() else { continue };
                if args.interface_name.as_str() != watched.interface {
                    continue;
                }
                if let Some(value) = args.changed_properties.get(watched.property) {
                    apply(value.try_to_owned().ok());
                } else if args.invalidated_properties.contains(&watched.property) {
                    apply(read().await?);
                }
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(metered: bool, battery: bool) -> PolicyConfig {
        PolicyConfig {
            pause_watch_on_metered: metered,
            pause_watch_on_battery: battery,
        }
    }

    #[test]
    fn metered_yes_and_guess_yes_hold() {
        let held: Vec<u32> = (0..6).filter(|v| nm_metered(*v)).collect();
        assert_eq!(held, [1, 3]);
    }

    #[test]
    fn each_condition_holds_only_when_its_policy_is_on() {
        let metered = Conditions {
            metered: true,
            on_battery: false,
        };
        let battery = Conditions {
            metered: false,
            on_battery: true,
        };
        let both = Conditions {
            metered: true,
            on_battery: true,
        };
        assert_eq!(decide(&config(true, false), metered), Hold::Metered);
        assert_eq!(decide(&config(false, false), metered), Hold::None);
        assert_eq!(decide(&config(true, false), battery), Hold::None);
        assert_eq!(decide(&config(true, true), battery), Hold::OnBattery);
        assert_eq!(decide(&config(true, true), both), Hold::Metered);
        assert_eq!(decide(&config(false, true), both), Hold::OnBattery);
        assert_eq!(
            decide(&config(true, true), Conditions::default()),
            Hold::None
        );
    }

    #[test]
    fn the_hold_follows_the_conditions_and_tells_subscribers() {
        let policy = Policy::new(config(true, true));
        let mut changes = policy.subscribe();
        policy.update(|c| c.on_battery = true);
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), Hold::OnBattery);
        policy.update(|c| c.metered = true);
        assert_eq!(policy.hold(), Hold::Metered);
        assert_eq!(policy.hold().reason(), "metered connection");
        policy.update(|c| c.metered = false);
        policy.update(|c| c.on_battery = false);
        assert_eq!(policy.hold(), Hold::None);
        assert_eq!(policy.hold().reason(), "");
        // No change, no wake-up.
        changes.borrow_and_update();
        policy.update(|c| c.metered = false);
        assert!(!changes.has_changed().unwrap());
    }
}
