//! The published interface XML (`dbus/io.github.dbxport1.xml`) is what the running daemon
//! actually serves: a change to the `#[interface]` code that is not carried into the XML (and
//! the README's API section) fails here.

use crate::helper::*;

/// The `<interface name="io.github.dbxport1.…">` elements of an introspection document, with
/// whitespace normalized.
fn our_interfaces(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<interface name=\"io.github.dbxport1.") {
        let end = rest[start..]
            .find("</interface>")
            .expect("closed interface")
            + start
            + "</interface>".len();
        let block: String = rest[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // Doc comments are not part of the contract.
        let block = strip_comments(&block);
        out.push(block);
        rest = &rest[end..];
    }
    out.sort();
    out
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("-->").expect("closed comment") + start + 3;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("> <", "><")
}

/// The live document reduced to our interfaces, with a header saying where it comes from.
fn publishable(live: &str) -> String {
    let mut blocks = String::new();
    let mut rest = live;
    while let Some(start) = rest.find("  <interface name=\"io.github.dbxport1.") {
        let end = rest[start..].find("</interface>").unwrap() + start + "</interface>".len();
        blocks.push_str(&rest[start..end]);
        blocks.push('\n');
        rest = &rest[end..];
    }
    format!(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
         <!-- dbxportd's D-Bus API: service io.github.dbxport1, object /io/github/dbxport1.\n     \
         Written from the running daemon by `DBXPORT_BLESS_XML=1 cargo test --test system interface`;\n     \
         that test fails when this file no longer matches what the daemon serves. -->\n\
         <node name=\"/io/github/dbxport1\">\n{blocks}</node>\n"
    )
}

#[system_test]
async fn published_xml_matches_the_running_daemon() {
    let w = world(small_config()).await;
    let proxy = zbus::fdo::IntrospectableProxy::builder(&w.conn)
        .destination("io.github.dbxport1")
        .unwrap()
        .path("/io/github/dbxport1")
        .unwrap()
        .build()
        .await
        .unwrap();
    let live = proxy.introspect().await.unwrap();
    let xml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/dbus/io.github.dbxport1.xml");
    if std::env::var_os("DBXPORT_BLESS_XML").is_some() {
        std::fs::write(xml_path, publishable(&live)).unwrap();
    }
    let published = std::fs::read_to_string(xml_path).unwrap();
    let (live, published) = (our_interfaces(&live), our_interfaces(&published));
    assert_eq!(
        live.len(),
        4,
        "Uploader, Account, Folders and Watches are served"
    );
    assert_eq!(
        live, published,
        "dbus/io.github.dbxport1.xml is out of date; regenerate it from the running daemon"
    );
}
