//! `dbxportctl emulator` (`dbxport-testkit emulator`): the Dropbox API emulator on its own,
//! until Ctrl-C, so a person or another client can point at it (`api_url` and `content_url` =
//! the printed URL).

use super::{EmulatorArgs, Exit, report};
use crate::emulator::{Emulator, EmulatorConfig};

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
    println!("Dropbox API emulator on {}", emulator.base_url());
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
