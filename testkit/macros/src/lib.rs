//! `#[system_test]`: the one runtime every system and engine test runs on, named once.
//!
//! Those tests drive a daemon, an emulator and D-Bus from one test, and a blocked worker must
//! not stall the others, so they need a multi-threaded runtime; two workers match the machines
//! the suite runs on. A declarative macro cannot be an attribute, and wrapping each test in a
//! `macro_rules!` call would take its body out of rustfmt's reach; this attribute only puts
//! tokio's in front of the function, so test names, filters and formatting stay as they were.
//! It needs no parser: the function's tokens pass through untouched.

use proc_macro::TokenStream;

/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` on an `async fn`.
#[proc_macro_attribute]
pub fn system_test(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return r##"compile_error!("#[system_test] takes no arguments");"##
            .parse()
            .unwrap_or_default();
    }
    let mut out: TokenStream = r#"#[::tokio::test(flavor = "multi_thread", worker_threads = 2)]"#
        .parse()
        .unwrap_or_default();
    out.extend(item);
    out
}
