//! Thunar keeps every custom action in one file, the user's and ours together: ours are
//! merged into it, and taken out again, by their `dbxport-` unique ids, leaving the user's as
//! they were.

use std::path::Path;

use super::InstallError;

const THUNAR: &str = include_str!("../../../desktop/thunar/uca.xml");

/// What marks our Thunar actions among the user's.
pub(super) const THUNAR_MARK: &str = "<unique-id>dbxport-";

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Our Thunar actions (each `<action>…</action>` block of the shipped file, then one per
/// export profile in `profiles`, made from "Send to Dropbox"), their commands running
/// `dbxportctl`, and `dbxport-export` for "Send to Dropbox…".
pub(super) fn thunar_actions(dbxportctl: &str, export: &str, profiles: &[String]) -> Vec<String> {
    let shipped: Vec<&str> = action_blocks(THUNAR)
        .into_iter()
        .map(|(start, end)| &THUNAR[start..end])
        .collect();
    let send = shipped
        .iter()
        .find(|block| block.contains("<unique-id>dbxport-send</unique-id>"))
        .copied()
        .unwrap_or_default();
    let for_profiles = profiles.iter().map(|name| {
        send.replace(
            "<name>Send to Dropbox</name>",
            &format!("<name>{}</name>", super::files::profile_label(name)),
        )
        .replace(
            "<unique-id>dbxport-send</unique-id>",
            &format!("<unique-id>dbxport-profile-{name}</unique-id>"),
        )
        .replace(
            "upload --notify %F",
            &format!("upload --notify --profile {name} %F"),
        )
        .replace(
            "to Dropbox (dbxport)</description>",
            &format!("to Dropbox with the export profile {name} (dbxport)</description>"),
        )
    });
    shipped
        .iter()
        .map(|block| block.to_string())
        .chain(for_profiles)
        .map(|block| {
            block
                .replace(
                    "<command>dbxportctl ",
                    &format!("<command>{} ", xml_escape(dbxportctl)),
                )
                .replace(
                    "<command>dbxport-export ",
                    &format!("<command>{} ", xml_escape(export)),
                )
        })
        .collect()
}

/// The byte ranges of the `<action>…</action>` blocks in `text` (they do not nest), each
/// from the start of its line to the end of the line that closes it.
fn action_blocks(text: &str) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("<action>").map(|i| from + i) {
        // Comments may mention actions.
        if let Some(comment) = text[from..open].find("<!--").map(|i| from + i) {
            match text[comment..].find("-->") {
                Some(end) => {
                    from = comment + end + "-->".len();
                    continue;
                }
                None => break,
            }
        }
        let Some(close) = text[open..]
            .find("</action>")
            .map(|i| open + i + "</action>".len())
        else {
            break;
        };
        let start = text[..open].rfind('\n').map_or(0, |i| i + 1);
        let end = text[close..]
            .find('\n')
            .map_or(text.len(), |i| close + i + 1);
        blocks.push((start, end));
        from = end;
    }
    blocks
}

/// `text` without our actions.
pub(super) fn without_ours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in action_blocks(text) {
        if text[start..end].contains(THUNAR_MARK) {
            out.push_str(&text[last..start]);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The user's Thunar actions file with ours in it (replacing any earlier copy of ours).
pub(super) fn thunar_with_ours(
    existing: Option<&str>,
    ours: &[String],
    path: &Path,
) -> Result<String, InstallError> {
    let base = match existing {
        Some(text) => without_ours(text),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<actions>\n</actions>\n".into(),
    };
    let close = base
        .rfind("</actions>")
        .ok_or_else(|| InstallError::NotThunarActions(path.to_path_buf()))?;
    let at = base[..close].rfind('\n').map_or(0, |i| i + 1);
    let at = if base[at..close].trim().is_empty() {
        at
    } else {
        close
    };
    let mut merged = String::with_capacity(base.len() + 2048);
    merged.push_str(&base[..at]);
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    for action in ours {
        merged.push_str(action);
    }
    merged.push_str(&base[at..]);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_profile_gets_a_thunar_action() {
        let ours = thunar_actions(
            "/bin/dbxportctl",
            "/bin/dbxport-export",
            &["web".to_string()],
        );
        assert_eq!(
            ours.len(),
            thunar_actions("/bin/dbxportctl", "/bin/dbxport-export", &[]).len() + 1
        );
        let web = ours.last().unwrap();
        assert!(
            web.contains("<unique-id>dbxport-profile-web</unique-id>"),
            "{web}"
        );
        assert!(
            web.contains("<name>Send to Dropbox (profile web)</name>"),
            "{web}"
        );
        assert!(
            web.contains("<command>/bin/dbxportctl upload --notify --profile web %F</command>"),
            "{web}"
        );
    }

    #[test]
    fn thunar_merge_keeps_the_users_actions_and_is_idempotent() {
        let user = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- an <action> -->\n<actions>\n<action>\n\t<name>Mine</name>\n\t<unique-id>1-1</unique-id>\n</action>\n</actions>\n";
        let ours = thunar_actions("/bin/dbxportctl", "/bin/dbxport-export", &[]);
        assert_eq!(ours.len(), 4);
        let once = thunar_with_ours(Some(user), &ours, Path::new("u")).unwrap();
        let twice = thunar_with_ours(Some(&once), &ours, Path::new("u")).unwrap();
        assert_eq!(once, twice);
        assert!(once.contains("<name>Mine</name>"));
        assert_eq!(once.matches(THUNAR_MARK).count(), 4);
        assert!(once.contains("<command>/bin/dbxportctl upload --notify %F</command>"));
        assert!(once.contains("<command>/bin/dbxport-export %F</command>"));
        assert_eq!(without_ours(&once), user);
    }
}
