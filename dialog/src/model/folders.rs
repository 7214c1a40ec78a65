//! The Target folder: the Dropbox folder tree, loaded one level at a time through the Folders
//! interface's `ListFolders` (which caches nothing, so asking again is how to reload), the
//! folder chosen (the last one used, at first), and New folder's name check before any call.
//!
//! Levels are keyed by Dropbox's comparison form (`path_key`: letter case does not tell two
//! folders apart), and each level's loading is one enum with its moves here.

use std::collections::HashMap;

use dbxport::dropbox::path::{path_key, validate_folder, validate_name};

/// One folder, as `ListFolders` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: String,
    /// As Dropbox displays it (`/Photos/2024`).
    pub path: String,
}

/// One level of the tree: the folders directly inside a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    NotLoaded,
    Loading,
    Loaded(Vec<Folder>),
    /// The listing failed; the message says why, and the window offers Retry.
    Failed(String),
}

/// The tree, the folder being browsed and the folder chosen.
#[derive(Debug, Clone)]
pub struct FolderTree {
    levels: HashMap<String, Level>,
    /// The folder whose subfolders are shown (`""`: the top of the Dropbox).
    browsing: String,
    /// Where the photos go (`""`: the top of the Dropbox).
    chosen: String,
}

impl FolderTree {
    /// A tree browsing and choosing `last_used` (the folder of the last export, if any).
    pub fn new(last_used: &str) -> FolderTree {
        let start = validate_folder(last_used).unwrap_or_default();
        FolderTree {
            levels: HashMap::new(),
            browsing: start.clone(),
            chosen: start,
        }
    }

    pub fn browsing(&self) -> &str {
        &self.browsing
    }

    pub fn chosen(&self) -> &str {
        &self.chosen
    }

    /// The level inside `path`.
    pub fn level(&self, path: &str) -> &Level {
        self.levels
            .get(&path_key(path))
            .unwrap_or(&Level::NotLoaded)
    }

    /// The level being browsed.
    pub fn current(&self) -> &Level {
        self.level(&self.browsing)
    }

    /// The folder's level is wanted: returns the path to ask `ListFolders` for, unless it is
    /// loaded or already being loaded.
    pub fn want(&mut self, path: &str) -> Option<String> {
        match self.level(path) {
            Level::Loaded(_) | Level::Loading => None,
            Level::NotLoaded | Level::Failed(_) => Some(self.start_loading(path)),
        }
    }

    /// Reload (or Retry): ask again whatever the level holds.
    pub fn reload(&mut self) -> String {
        let path = self.browsing.clone();
        self.start_loading(&path)
    }

    fn start_loading(&mut self, path: &str) -> String {
        self.levels.insert(path_key(path), Level::Loading);
        path.to_owned()
    }

    /// `ListFolders(path)` answered.
    pub fn loaded(&mut self, path: &str, answer: Result<Vec<Folder>, String>) {
        let level = match answer {
            Ok(folders) => Level::Loaded(folders),
            Err(message) => Level::Failed(message),
        };
        self.levels.insert(path_key(path), level);
    }

    /// Goes into a folder (it becomes the chosen one); returns the path to list, if needed.
    pub fn enter(&mut self, path: &str) -> Option<String> {
        self.browsing = path.to_owned();
        self.chosen = path.to_owned();
        self.want(path)
    }

    /// Goes up one level (the parent becomes the chosen one); None at the top.
    pub fn up(&mut self) -> Option<Option<String>> {
        if self.browsing.is_empty() {
            return None;
        }
        let parent = parent_of(&self.browsing).to_owned();
        Some(self.enter(&parent))
    }

    /// New folder: the full path for `CreateFolder`, inside the folder browsed, or why the
    /// name cannot be used (checked by the product's own Dropbox path rules, before any call).
    pub fn new_folder_path(&self, name: &str) -> Result<String, String> {
        let name = name.trim_start();
        validate_name(name).map_err(|e| e.to_string())?;
        let path = format!("{}/{name}", self.browsing);
        validate_folder(&path).map_err(|e| e.to_string())?;
        if let Level::Loaded(folders) = self.current()
            && folders.iter().any(|f| path_key(&f.path) == path_key(&path))
        {
            return Err(crate::i18n::tr("A folder named {name:?} is already here.")
                .replace("{name:?}", &format!("{name:?}")));
        }
        Ok(path)
    }

    /// `CreateFolder` answered with the folder's path as Dropbox stores it: the level it is in
    /// is listed again, and the new folder is entered and chosen. Returns the paths to list.
    pub fn created(&mut self, path: &str) -> Vec<String> {
        let parent = parent_of(path).to_owned();
        let mut lists = vec![self.start_loading(&parent)];
        lists.extend(self.enter(path));
        lists
    }

    /// The breadcrumb: each folder from the top down to the one browsed, as (name, path).
    pub fn crumbs(&self) -> Vec<(String, String)> {
        let mut crumbs = vec![(crate::i18n::tr("Dropbox"), String::new())];
        let mut path = String::new();
        for name in self.browsing.split('/').filter(|n| !n.is_empty()) {
            path.push('/');
            path.push_str(name);
            crumbs.push((name.to_owned(), path.clone()));
        }
        crumbs
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str) -> Folder {
        Folder {
            name: path.rsplit_once('/').unwrap().1.into(),
            path: path.into(),
        }
    }

    #[test]
    fn levels_load_once_each_and_reload_asks_again() {
        let mut tree = FolderTree::new("");
        assert_eq!(tree.want(""), Some(String::new()));
        assert_eq!(tree.current(), &Level::Loading);
        // Asked once, not again while the answer is on its way.
        assert_eq!(tree.want(""), None);
        tree.loaded("", Ok(vec![folder("/Photos")]));
        assert_eq!(tree.want(""), None);
        // Down one level: its own listing.
        assert_eq!(tree.enter("/Photos"), Some("/Photos".into()));
        assert_eq!(tree.chosen(), "/Photos");
        tree.loaded("/photos", Ok(vec![folder("/Photos/2024")]));
        assert_eq!(tree.current(), &Level::Loaded(vec![folder("/Photos/2024")]));
        // Reload lists again even though the level is loaded.
        assert_eq!(tree.reload(), "/Photos");
        assert_eq!(tree.current(), &Level::Loading);
        // Up: the top is loaded already.
        assert_eq!(tree.up(), Some(None));
        assert_eq!(tree.chosen(), "");
        assert_eq!(tree.up(), None);
    }

    #[test]
    fn a_failed_listing_is_kept_with_its_reason_and_retried() {
        let mut tree = FolderTree::new("/Albums/Trip");
        assert_eq!(tree.browsing(), "/Albums/Trip");
        assert_eq!(tree.chosen(), "/Albums/Trip");
        assert_eq!(tree.want("/Albums/Trip"), Some("/Albums/Trip".into()));
        tree.loaded(
            "/Albums/Trip",
            Err("Dropbox did not answer; try again".into()),
        );
        assert_eq!(
            tree.current(),
            &Level::Failed("Dropbox did not answer; try again".into())
        );
        assert_eq!(tree.reload(), "/Albums/Trip");
        assert_eq!(
            tree.crumbs(),
            vec![
                ("Dropbox".into(), "".into()),
                ("Albums".into(), "/Albums".into()),
                ("Trip".into(), "/Albums/Trip".into())
            ]
        );
        // A remembered folder that is no longer a valid path starts at the top.
        assert_eq!(FolderTree::new("no slash").chosen(), "");
    }

    #[test]
    fn new_folder_names_are_checked_before_any_call() {
        let mut tree = FolderTree::new("/Photos");
        tree.loaded("/Photos", Ok(vec![folder("/Photos/Summer")]));
        assert_eq!(tree.new_folder_path("Winter"), Ok("/Photos/Winter".into()));
        let taken = tree.new_folder_path("summer").unwrap_err();
        assert!(taken.contains("already here"), "{taken}");
        for bad in ["", "a/b", "..", "desktop.ini", "trailing "] {
            assert!(tree.new_folder_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            tree.new_folder_path("desktop.ini")
                .unwrap_err()
                .contains("reserved")
        );
        // Created: the parent is listed again, the new folder entered and chosen.
        assert_eq!(
            tree.created("/Photos/Winter"),
            vec!["/Photos".to_string(), "/Photos/Winter".to_string()]
        );
        assert_eq!(tree.chosen(), "/Photos/Winter");
    }
}
