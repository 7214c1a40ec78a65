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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dbus/io.github.dbxport1.xml"
    ))
    .unwrap();
    let (live, published) = (our_interfaces(&live), our_interfaces(&published));
    assert_eq!(live.len(), 2, "Uploader and Account are served");
    assert_eq!(
        live, published,
        "dbus/io.github.dbxport1.xml is out of date; regenerate it from the running daemon"
    );
}
