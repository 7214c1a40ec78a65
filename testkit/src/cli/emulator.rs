//! `dbxportctl emulator` (`dbxport-testkit emulator`): the Dropbox API emulator on its own,
//! until Ctrl-C, so a person or another client can point at it (`api_url` and `content_url` =
//! the printed URL), with the network model the flags ask for (latency, bandwidth, rate limit,
//! namespace lock: see `emulator::network` and `emulator::throttle`).

use std::time::Duration;

use super::{EmulatorArgs, Exit, report};
use crate::emulator::{CommitLock, Emulator, EmulatorConfig, NetworkModel};

/// The network model the flags ask for (every knob off unless given).
fn network(args: &EmulatorArgs) -> NetworkModel {
    let commit_lock =
        (args.commit_lock_ms.is_some() || args.commit_entry_ms.is_some()).then(|| CommitLock {
            base: Duration::from_millis(args.commit_lock_ms.unwrap_or(0)),
            per_entry: Duration::from_millis(args.commit_entry_ms.unwrap_or(0)),
        });
    NetworkModel {
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        seed: args.seed,
        bandwidth: args.bandwidth.filter(|&rate| rate > 0),
        rate_limit: args.rate_limit.filter(|&limit| limit > 0),
        commit_lock,
    }
}

/// One line saying what the network model does, if anything.
fn describe(model: &NetworkModel) -> Option<String> {
    let mut parts = Vec::new();
    if !model.latency.is_zero() || !model.jitter.is_zero() {
        parts.push(format!(
            "latency {} ms + up to {} ms",
            model.latency.as_millis(),
            model.jitter.as_millis()
        ));
    }
    if let Some(rate) = model.bandwidth {
        parts.push(format!("upload bandwidth {rate} bytes/s"));
    }
    if let Some(limit) = model.rate_limit {
        parts.push(format!("{limit} requests/s per token"));
    }
    if let Some(lock) = model.commit_lock {
        parts.push(format!(
            "namespace lock {} ms + {} ms per file",
            lock.base.as_millis(),
            lock.per_entry.as_millis()
        ));
    }
    (!parts.is_empty()).then(|| format!("network: {}", parts.join(", ")))
}

pub async fn run(args: EmulatorArgs) -> Exit {
    let emulator = match Emulator::start(EmulatorConfig {
        root: args.root.clone(),
        port: args.port,
        access_token: args.token.clone(),
        app_key: args.app_key.clone(),
    })
    .await
    {
        Ok(emulator) => emulator,
        Err(e) => {
            report(format!("cannot start the emulator: {e}"));
            return Exit::Error;
        }
    };
    let model = network(&args);
    let described = describe(&model);
    emulator.set_network(model);
    println!("Dropbox API emulator on {}", emulator.base_url());
    if let Some(line) = described {
        println!("{line}");
    }
    println!("files under {}", args.root.display());
    if args.token.is_none() {
        // The user asked for a token to be issued: printing it is the point.
        println!("access token: {}", emulator.access_token());
    }
    println!("Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    Exit::Ok
}
