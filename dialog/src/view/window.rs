//! The window's widgets, how each renders its part of the model, and the user's actions
//! forwarded to the model and the daemon. No decision is made here: the model makes them
//! (`crate::model`), this file draws the result.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use adw::prelude::*;
use futures_util::StreamExt;
use gtk::{gio, glib};
use zbus::zvariant::OwnedValue;

use super::bus::Bus;
use super::thumbs::Thumbnails;
use super::timing;
use crate::i18n::tr;
use crate::model::account::{Account, AccountEvent};
use crate::model::call::{Paths, upload_call};
use crate::model::errors::{Trouble, classify};
use crate::model::folders::{Folder, FolderTree, Level};
use crate::model::human_size;
use crate::model::options::{self, Options, PRESETS, Size};
use crate::model::photos::Photos;
use crate::model::profiles::{Profile, ProfileChoice};
use crate::model::progress::{BatchProgress, Phase, phase_label};
use crate::model::remembered::Remembered;
use crate::model::stage::{Stage, StageEvent};

/// A signal heard while `Upload` had not answered yet (a small batch can end that fast).
enum Early {
    State {
        job: u64,
        batch: u64,
        state: String,
        message: String,
    },
    Finished {
        batch: u64,
        summary: HashMap<String, OwnedValue>,
    },
}

/// The model, as one value.
struct State {
    photos: Photos,
    account: Account,
    tree: FolderTree,
    options: Options,
    /// The daemon's export profiles and the one chosen.
    profiles: ProfileChoice,
    stage: Stage,
    early: Vec<Early>,
    remembered_at: Option<PathBuf>,
    /// A New folder or listing problem, shown under the tree.
    folder_error: Option<String>,
}

struct Ui {
    window: adw::ApplicationWindow,
    toasts: adw::ToastOverlay,
    stack: gtk::Stack,
    photos_group: adw::PreferencesGroup,
    /// One entry per photo, in the photo list's order (the file's name): the list view's
    /// model, which makes rows only for the photos on screen.
    photos_store: gtk::StringList,
    thumbnails: Rc<Thumbnails>,
    photos_scroll: gtk::ScrolledWindow,
    /// How many photo rows the list view has made (the benchmark's "rows made").
    photo_rows_made: Cell<usize>,
    refused_list: gtk::ListBox,
    account_row: adw::ActionRow,
    space: gtk::LevelBar,
    login: gtk::Button,
    other_account: gtk::Button,
    folder_group: adw::PreferencesGroup,
    up: gtk::Button,
    folder_list: gtk::ListBox,
    folder_status: adw::ActionRow,
    folder_retry: gtk::Button,
    new_folder: adw::EntryRow,
    folder_error: gtk::Label,
    /// Original, then one per preset.
    size_buttons: Vec<gtk::ToggleButton>,
    max_dimension: gtk::SpinButton,
    quality: gtk::SpinButton,
    strip: gtk::Switch,
    conflict: adw::ComboRow,
    link: gtk::Switch,
    /// "Export profile": hidden until the daemon lists at least one.
    profile: adw::ComboRow,
    /// "Use the profile's folder", shown when the chosen profile has one.
    profile_folder_list: gtk::ListBox,
    profile_folder_row: adw::ActionRow,
    profile_folder: gtk::Switch,
    start_error: gtk::Label,
    start: gtk::Button,
    batch_title: gtk::Label,
    batch_bar: gtk::ProgressBar,
    batch_status: gtk::Label,
    files_list: gtk::ListBox,
    file_rows: RefCell<Vec<adw::ActionRow>>,
    failures: gtk::Label,
    link_row: adw::ActionRow,
    link_list: gtk::ListBox,
    retry_failed: gtk::Button,
    cancel: gtk::Button,
    state: RefCell<State>,
    bus: RefCell<Option<Bus>>,
    /// Set while the window writes its own controls, so their change handlers stay quiet.
    rendering: Cell<bool>,
}

/// Sets a widget's accessible name (what a screen reader says, and what AT-SPI finds).
fn name(widget: &impl IsA<gtk::Accessible>, label: &str) {
    widget.update_property(&[gtk::accessible::Property::Label(label)]);
}

/// A button with a text label and its mnemonic. The accessible name is set without the
/// underscore: GTK 4.8 would otherwise name it with the raw "_Start".
fn button(label: &str) -> gtk::Button {
    let b = gtk::Button::with_mnemonic(label);
    name(&b, &label.replace('_', ""));
    b
}

fn icon_button(icon: &str, label: &str) -> gtk::Button {
    let b = gtk::Button::from_icon_name(icon);
    b.set_tooltip_text(Some(label));
    b.set_valign(gtk::Align::Center);
    b.add_css_class("flat");
    name(&b, label);
    b
}

/// A boxed list, with its accessible name (GTK would name it "GtkListBox").
fn list(label: &str) -> gtk::ListBox {
    let l = gtk::ListBox::new();
    name(&l, label);
    l.set_selection_mode(gtk::SelectionMode::None);
    l.add_css_class("boxed-list");
    l
}

fn error_label() -> gtk::Label {
    let l = gtk::Label::new(None);
    l.set_wrap(true);
    l.set_xalign(0.0);
    l.add_css_class("error");
    l.set_visible(false);
    l.set_selectable(true);
    l
}

/// Builds the window for these files, shows it, then starts talking to the daemon.
pub fn open(app: &adw::Application, files: Vec<PathBuf>) {
    let remembered_at = Remembered::path().ok();
    let (remembered, remembered_error) = match remembered_at.as_deref().map(Remembered::load) {
        Some(Ok(r)) => (r, None),
        Some(Err(e)) => (Remembered::default(), Some(e.to_string())),
        None => (Remembered::default(), None),
    };
    tracing::debug!(unix_us = timing::unix_us() as u64, "activated");
    let state = State {
        photos: Photos::from_paths(files),
        account: Account::Connecting,
        tree: FolderTree::new(&remembered.folder),
        options: remembered.options(),
        profiles: ProfileChoice::default(),
        stage: Stage::Choosing { error: None },
        early: Vec::new(),
        remembered_at,
        folder_error: None,
    };
    tracing::debug!(unix_us = timing::unix_us() as u64, "building the window");
    let (ui, handles) = build(app, state);
    let ui = Rc::new(ui);
    connect_handlers(&ui, handles);
    // A screenful of rows before the first frame, the rest after it a few at a time (GTK 4.8's
    // list view makes a row for each of up to 200 photos, whatever it shows).
    render_photos(&ui, Some(PHOTO_ROWS_AT_ONCE));
    render_account(&ui);
    render_folders(&ui);
    render_options(&ui);
    render_stage(&ui);
    tracing::debug!(unix_us = timing::unix_us() as u64, "window built");
    ui.window.present();
    tracing::debug!(unix_us = timing::unix_us() as u64, "window presented");
    let u = ui.clone();
    timing::after_next_frame(&ui.window, move || {
        tracing::debug!(
            unix_us = timing::unix_us() as u64,
            photo_rows = u.photo_rows_made.get(),
            "window shown"
        );
        // The window is up: the thumbnails (never before), and the other photos.
        u.thumbnails.start();
        glib::spawn_future_local(list_other_photos(u));
    });
    if let Some(e) = remembered_error {
        ui.toasts.add_toast(adw::Toast::new(&e));
    }
    glib::spawn_future_local(async move { connect(ui).await });
}

fn build(app: &adw::Application, state: State) -> (Ui, Handles) {
    let window = adw::ApplicationWindow::builder()
        .application(app)
        .title(tr("Send to Dropbox"))
        .default_width(620)
        .default_height(820)
        .build();
    let toasts = adw::ToastOverlay::new();
    let stack = gtk::Stack::new();
    stack.set_transition_type(gtk::StackTransitionType::Crossfade);
    let outer = gtk::Box::new(gtk::Orientation::Vertical, 0);
    let header = adw::HeaderBar::new();
    outer.append(&header);
    toasts.set_child(Some(&stack));
    toasts.set_vexpand(true);
    outer.append(&toasts);
    window.set_content(Some(&outer));

    // The choices.
    let page = gtk::Box::new(gtk::Orientation::Vertical, 24);
    page.set_margin_top(18);
    page.set_margin_bottom(18);
    page.set_margin_start(12);
    page.set_margin_end(12);

    let photos_group = adw::PreferencesGroup::new();
    photos_group.set_title(&tr("Photos"));
    let add = button(&tr("_Add…"));
    add.add_css_class("flat");
    photos_group.set_header_suffix(Some(&add));
    // A list view in its own scrolled box: rows exist only for the photos on screen, so
    // the window is up as fast with 200 photos as with 3 (BENCHMARKS.md, "Export dialog").
    let photos_store = gtk::StringList::new(&[]);
    let photos_factory = gtk::SignalListItemFactory::new();
    let photos_view = gtk::ListView::new(
        Some(gtk::NoSelection::new(Some(photos_store.clone()))),
        Some(photos_factory.clone()),
    );
    name(&photos_view, &tr("Photos to send"));
    let photos_scroll = gtk::ScrolledWindow::new();
    name(&photos_scroll, &tr("Photos"));
    photos_scroll.set_hscrollbar_policy(gtk::PolicyType::Never);
    photos_view.set_show_separators(true);
    photos_scroll.set_child(Some(&photos_view));
    photos_scroll.add_css_class("card");
    photos_group.add(&photos_scroll);
    let refused_list = list(&tr("Files that cannot be sent"));
    refused_list.set_margin_top(12);
    photos_group.add(&refused_list);
    page.append(&photos_group);

    let account_group = adw::PreferencesGroup::new();
    account_group.set_title(&tr("Account"));
    let account_row = adw::ActionRow::new();
    let space = gtk::LevelBar::new();
    space.set_valign(gtk::Align::Center);
    space.set_size_request(120, -1);
    name(&space, &tr("Dropbox space used"));
    account_row.add_suffix(&space);
    let login = button(&tr("_Log in"));
    login.set_valign(gtk::Align::Center);
    login.add_css_class("suggested-action");
    account_row.add_suffix(&login);
    account_group.add(&account_row);
    let other_account = button(&tr("Use _another account"));
    other_account.add_css_class("flat");
    account_group.set_header_suffix(Some(&other_account));
    page.append(&account_group);

    let folder_group = adw::PreferencesGroup::new();
    folder_group.set_title(&tr("Target folder"));
    let folder_buttons = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    let up = icon_button("go-up-symbolic", &tr("Up one folder"));
    let reload = icon_button("view-refresh-symbolic", &tr("Reload folders"));
    let make = icon_button("folder-new-symbolic", &tr("New folder…"));
    folder_buttons.append(&make);
    folder_buttons.append(&up);
    folder_buttons.append(&reload);
    folder_group.set_header_suffix(Some(&folder_buttons));
    let folder_list = list(&tr("Folders"));
    let folder_status = adw::ActionRow::new();
    let folder_retry = button(&tr("_Retry"));
    folder_retry.set_valign(gtk::Align::Center);
    folder_status.add_suffix(&folder_retry);
    // A profile's folder (often a template: no place in the tree) or the tree's.
    let profile_folder = gtk::Switch::new();
    profile_folder.set_valign(gtk::Align::Center);
    name(&profile_folder, &tr("Use the profile's folder"));
    let profile_folder_row = adw::ActionRow::new();
    profile_folder_row.set_use_markup(false);
    profile_folder_row.set_title(&tr("Use the profile's folder"));
    profile_folder_row.add_suffix(&profile_folder);
    profile_folder_row.set_activatable_widget(Some(&profile_folder));
    let profile_folder_list = list(&tr("The profile's folder"));
    profile_folder_list.set_margin_bottom(12);
    profile_folder_list.append(&profile_folder_row);
    profile_folder_list.set_visible(false);
    folder_group.add(&profile_folder_list);
    folder_group.add(&folder_list);
    let new_folder = adw::EntryRow::new();
    new_folder.set_title(&tr("New folder"));
    new_folder.set_show_apply_button(true);
    name(&new_folder, &tr("New folder name"));
    let new_list = list(&tr("New folder"));
    new_list.set_margin_top(12);
    new_list.append(&new_folder);
    folder_group.add(&new_list);
    let folder_error = error_label();
    folder_error.set_margin_top(6);
    folder_group.add(&folder_error);
    page.append(&folder_group);

    let options_group = adw::PreferencesGroup::new();
    options_group.set_title(&tr("Options"));
    let profile = adw::ComboRow::new();
    profile.set_title(&tr("Export profile"));
    profile.set_use_subtitle(false);
    name(&profile, &tr("Export profile"));
    profile.set_visible(false);
    options_group.add(&profile);
    // The size as a row of toggle buttons rather than a drop-down: one click (or key press)
    // each, every choice visible, and each a button with its own accessible name.
    let size_row = adw::ActionRow::new();
    size_row.set_title(&tr("Size"));
    size_row.set_subtitle(&tr("Long edge, in pixels"));
    let size_box = gtk::Box::new(gtk::Orientation::Horizontal, 0);
    size_box.add_css_class("linked");
    size_box.set_valign(gtk::Align::Center);
    let mut size_buttons: Vec<gtk::ToggleButton> = Vec::new();
    let labels = std::iter::once((tr("Original"), tr("Original size")))
        .chain(PRESETS.iter().map(|p| (p.to_string(), format!("{p} px"))));
    for (label, accessible) in labels {
        let b = gtk::ToggleButton::with_label(&label);
        name(&b, &accessible);
        if let Some(first) = size_buttons.first() {
            b.set_group(Some(first));
        }
        size_box.append(&b);
        size_buttons.push(b);
    }
    size_row.add_suffix(&size_box);
    options_group.add(&size_row);
    let max_dimension = gtk::SpinButton::with_range(
        f64::from(dbxport::prepare::MIN_DIMENSION),
        f64::from(dbxport::prepare::MAX_DIMENSION),
        100.0,
    );
    max_dimension.set_valign(gtk::Align::Center);
    name(&max_dimension, &tr("Maximum dimension in pixels"));
    let dim_row = adw::ActionRow::new();
    dim_row.set_title(&tr("Maximum dimension (px)"));
    dim_row.add_suffix(&max_dimension);
    options_group.add(&dim_row);
    let quality = gtk::SpinButton::with_range(1.0, 100.0, 1.0);
    quality.set_valign(gtk::Align::Center);
    name(&quality, &tr("JPEG quality"));
    let quality_row = adw::ActionRow::new();
    quality_row.set_title(&tr("JPEG quality"));
    quality_row.add_suffix(&quality);
    options_group.add(&quality_row);
    let switch_row = |title: &str| {
        let s = gtk::Switch::new();
        s.set_valign(gtk::Align::Center);
        name(&s, title);
        let row = adw::ActionRow::new();
        row.set_title(title);
        row.add_suffix(&s);
        row.set_activatable_widget(Some(&s));
        options_group.add(&row);
        s
    };
    let strip = switch_row(&tr("Remove location"));
    let conflict = adw::ComboRow::new();
    conflict.set_title(&tr("When the name is taken"));
    let conflicts: Vec<String> = options::CONFLICTS
        .iter()
        .map(|c| options::conflict_label(*c))
        .collect();
    let conflict_strings: Vec<&str> = conflicts.iter().map(String::as_str).collect();
    conflict.set_model(Some(&gtk::StringList::new(&conflict_strings)));
    name(&conflict, &tr("When the name is taken"));
    options_group.add(&conflict);
    let link = switch_row(&tr("Make a shared link"));
    page.append(&options_group);

    let clamp = adw::Clamp::new();
    clamp.set_child(Some(&page));
    let scroll = gtk::ScrolledWindow::new();
    name(&scroll, &tr("Export choices"));
    scroll.set_hscrollbar_policy(gtk::PolicyType::Never);
    scroll.set_child(Some(&clamp));
    scroll.set_vexpand(true);
    let choose = gtk::Box::new(gtk::Orientation::Vertical, 0);
    choose.append(&scroll);
    let bottom = gtk::Box::new(gtk::Orientation::Vertical, 6);
    bottom.set_margin_top(6);
    bottom.set_margin_bottom(12);
    bottom.set_margin_start(12);
    bottom.set_margin_end(12);
    let start_error = error_label();
    bottom.append(&start_error);
    let start = button(&tr("_Start"));
    start.add_css_class("suggested-action");
    start.add_css_class("pill");
    start.set_halign(gtk::Align::Center);
    bottom.append(&start);
    choose.append(&bottom);
    stack.add_named(&choose, Some("choose"));

    // The batch.
    let progress = gtk::Box::new(gtk::Orientation::Vertical, 12);
    progress.set_margin_top(18);
    progress.set_margin_bottom(12);
    progress.set_margin_start(12);
    progress.set_margin_end(12);
    let batch_title = gtk::Label::new(None);
    batch_title.add_css_class("title-2");
    progress.append(&batch_title);
    let batch_bar = gtk::ProgressBar::new();
    name(&batch_bar, &tr("Batch progress"));
    progress.append(&batch_bar);
    let batch_status = gtk::Label::new(None);
    batch_status.add_css_class("dim-label");
    progress.append(&batch_status);
    let files_list = list(&tr("Files"));
    files_list.set_valign(gtk::Align::Start);
    let files_clamp = adw::Clamp::new();
    files_clamp.set_child(Some(&files_list));
    let files_scroll = gtk::ScrolledWindow::new();
    name(&files_scroll, &tr("Files"));
    files_scroll.set_hscrollbar_policy(gtk::PolicyType::Never);
    files_scroll.set_child(Some(&files_clamp));
    files_scroll.set_vexpand(true);
    progress.append(&files_scroll);
    let failures = error_label();
    progress.append(&failures);
    let link_list = list(&tr("Shared link"));
    let link_row = adw::ActionRow::new();
    // Plain text: a link's "&dl=0" is not markup (as markup the row showed nothing).
    link_row.set_use_markup(false);
    link_row.set_title(&tr("Shared link"));
    let copy = button(&tr("_Copy"));
    copy.set_valign(gtk::Align::Center);
    link_row.add_suffix(&copy);
    link_list.append(&link_row);
    link_list.set_visible(false);
    progress.append(&link_list);
    let actions = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    actions.set_halign(gtk::Align::Center);
    let retry_failed = button(&tr("_Retry failed"));
    let cancel = button(&tr("_Cancel"));
    cancel.add_css_class("destructive-action");
    let close = button(&tr("C_lose"));
    // Not the title bar's Close (which does the same): this one says what happens.
    name(&close, &tr("Close; the uploads go on"));
    actions.append(&retry_failed);
    actions.append(&cancel);
    actions.append(&close);
    progress.append(&actions);
    stack.add_named(&progress, Some("progress"));

    let ui = Ui {
        window,
        toasts,
        stack,
        photos_group,
        photos_store,
        thumbnails: Rc::default(),
        photos_scroll,
        photo_rows_made: Cell::new(0),
        refused_list,
        account_row,
        space,
        login,
        other_account,
        folder_group,
        up,
        folder_list,
        folder_status,
        folder_retry,
        new_folder,
        folder_error,
        size_buttons,
        max_dimension,
        quality,
        strip,
        conflict,
        link,
        profile,
        profile_folder_list,
        profile_folder_row,
        profile_folder,
        start_error,
        start,
        batch_title,
        batch_bar,
        batch_status,
        files_list,
        file_rows: RefCell::new(Vec::new()),
        failures,
        link_row,
        link_list,
        retry_failed,
        cancel,
        state: RefCell::new(state),
        bus: RefCell::new(None),
        rendering: Cell::new(false),
    };
    (
        ui,
        Handles {
            photos_factory,
            add,
            reload,
            make,
            copy,
            close,
        },
    )
}

/// Buttons whose handlers need the shared `Ui` and which nothing renders.
struct Handles {
    photos_factory: gtk::SignalListItemFactory,
    add: gtk::Button,
    reload: gtk::Button,
    /// New folder…: takes the keyboard to the name's entry.
    make: gtk::Button,
    copy: gtk::Button,
    close: gtk::Button,
}

/// The handlers, connected after the `Ui` is shared.
fn connect_handlers(ui: &Rc<Ui>, handles: Handles) {
    let Handles {
        photos_factory,
        add,
        reload,
        make,
        copy,
        close,
    } = handles;
    connect_photo_rows(ui, &photos_factory);
    let u = ui.clone();
    make.connect_clicked(move |_| {
        u.new_folder.grab_focus();
    });
    let u = ui.clone();
    add.connect_clicked(move |_| add_photos(&u));
    let u = ui.clone();
    ui.login.connect_clicked(move |_| spawn(&u, begin_login));
    let u = ui.clone();
    ui.other_account
        .connect_clicked(move |_| spawn(&u, other_account));
    let u = ui.clone();
    ui.up.connect_clicked(move |_| {
        let list = u.state.borrow_mut().tree.up().flatten();
        after_move(&u, list);
    });
    let u = ui.clone();
    reload.connect_clicked(move |_| {
        let path = u.state.borrow_mut().tree.reload();
        after_move(&u, Some(path));
    });
    let u = ui.clone();
    ui.folder_retry.connect_clicked(move |_| {
        let path = u.state.borrow_mut().tree.reload();
        after_move(&u, Some(path));
    });
    // The apply button, or Enter in the entry: the same New folder.
    let u = ui.clone();
    ui.new_folder
        .connect_apply(move |entry| new_folder(&u, entry.text().as_str()));
    let u = ui.clone();
    ui.new_folder
        .connect_entry_activated(move |entry| new_folder(&u, entry.text().as_str()));
    for (i, b) in ui.size_buttons.iter().enumerate() {
        let u = ui.clone();
        b.connect_toggled(move |b| {
            if u.rendering.get() || !b.is_active() {
                return;
            }
            {
                let mut s = u.state.borrow_mut();
                match i {
                    0 => s.options.set_resized(false),
                    i => s.options.set_max_dimension(PRESETS[i - 1]),
                }
            }
            render_options(&u);
        });
    }
    // The two spin buttons: a number into the options, then the controls drawn again.
    let on_spin = |spin: &gtk::SpinButton, set: fn(&mut Options, u32)| {
        let u = ui.clone();
        spin.connect_value_changed(move |spin| {
            if u.rendering.get() {
                return;
            }
            set(&mut u.state.borrow_mut().options, spin.value() as u32);
            render_options(&u);
        });
    };
    on_spin(&ui.max_dimension, Options::set_max_dimension);
    on_spin(&ui.quality, Options::set_jpeg_quality);
    let u = ui.clone();
    ui.strip.connect_active_notify(move |s| {
        if !u.rendering.get() {
            u.state.borrow_mut().options.strip_location = s.is_active();
        }
    });
    let u = ui.clone();
    ui.link.connect_active_notify(move |s| {
        if !u.rendering.get() {
            u.state.borrow_mut().options.share_link = s.is_active();
        }
    });
    let u = ui.clone();
    ui.conflict.connect_selected_notify(move |c| {
        if !u.rendering.get() {
            u.state.borrow_mut().options.conflict = options::conflict_at(c.selected());
        }
    });
    let u = ui.clone();
    ui.profile.connect_selected_notify(move |c| {
        if u.rendering.get() {
            return;
        }
        {
            let mut s = u.state.borrow_mut();
            let State {
                profiles, options, ..
            } = &mut *s;
            profiles.choose(c.selected(), options);
        }
        render_options(&u);
        render_folders(&u);
    });
    let u = ui.clone();
    ui.profile_folder.connect_active_notify(move |s| {
        if u.rendering.get() {
            return;
        }
        u.state.borrow_mut().profiles.set_use_folder(s.is_active());
        render_folders(&u);
    });
    let u = ui.clone();
    ui.start.connect_clicked(move |_| {
        let u2 = u.clone();
        glib::spawn_future_local(async move { start(&u2).await });
    });
    let u = ui.clone();
    ui.cancel.connect_clicked(move |_| spawn(&u, cancel));
    let u = ui.clone();
    ui.retry_failed
        .connect_clicked(move |_| spawn(&u, retry_failed));
    let u = ui.clone();
    copy.connect_clicked(move |_| {
        let link = u
            .link_row
            .subtitle()
            .map(|s| s.to_string())
            .unwrap_or_default();
        u.window.clipboard().set_text(&link);
        u.toasts.add_toast(adw::Toast::new(&tr("Link copied")));
    });
    let u = ui.clone();
    // Close leaves the batch running in the daemon, which tells the desktop when it ends.
    close.connect_clicked(move |_| u.window.close());
}

fn spawn<F, Fut>(ui: &Rc<Ui>, f: F)
where
    F: FnOnce(Rc<Ui>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glib::spawn_future_local(f(ui.clone()));
}

fn bus(ui: &Ui) -> Option<Bus> {
    ui.bus.borrow().clone()
}

fn clear(list: &gtk::ListBox) {
    while let Some(child) = list.first_child() {
        list.remove(&child);
    }
}

/// Moves the stage (the one place: [`Stage::next`]) and draws it.
fn stage_event(ui: &Ui, event: StageEvent) {
    {
        let mut s = ui.state.borrow_mut();
        let stage = std::mem::replace(&mut s.stage, Stage::Starting);
        s.stage = stage.next(event);
    }
    render_stage(ui);
}

// ---------------------------------------------------------------------------------- photos

/// The photos' box shows this many rows, then scrolls.
const PHOTO_ROWS_SHOWN: usize = 4;

/// A photo row's height: the thumbnail, its margins, and the list row's own padding and
/// separator (5 px with Adwaita's style).
const PHOTO_ROW_HEIGHT: i32 = super::thumbs::SIZE + 12 + 5;

/// A photo row's widgets: the thumbnail, the name, the size, Remove.
fn photo_row_parts(row: &gtk::Widget) -> Option<(gtk::Image, gtk::Label, gtk::Label, gtk::Button)> {
    let image = row.first_child()?.downcast::<gtk::Image>().ok()?;
    let labels = image.next_sibling()?;
    let title = labels.first_child()?.downcast::<gtk::Label>().ok()?;
    let subtitle = title.next_sibling()?.downcast::<gtk::Label>().ok()?;
    let remove = labels.next_sibling()?.downcast::<gtk::Button>().ok()?;
    Some((image, title, subtitle, remove))
}

/// The list view's rows: made for the photos on screen, filled from the model at their
/// position, their thumbnails asked for while they show.
fn connect_photo_rows(ui: &Rc<Ui>, factory: &gtk::SignalListItemFactory) {
    let u = ui.clone();
    factory.connect_setup(move |_, item| {
        let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
            return;
        };
        let row = gtk::Box::new(gtk::Orientation::Horizontal, 12);
        row.set_margin_top(6);
        row.set_margin_bottom(6);
        row.set_margin_start(12);
        row.set_margin_end(6);
        let image = gtk::Image::new();
        image.set_pixel_size(super::thumbs::SIZE);
        row.append(&image);
        let labels = gtk::Box::new(gtk::Orientation::Vertical, 2);
        labels.set_hexpand(true);
        labels.set_valign(gtk::Align::Center);
        let title = gtk::Label::new(None);
        title.set_xalign(0.0);
        title.set_ellipsize(gtk::pango::EllipsizeMode::Middle);
        let subtitle = gtk::Label::new(None);
        subtitle.set_xalign(0.0);
        subtitle.add_css_class("dim-label");
        subtitle.add_css_class("caption");
        labels.append(&title);
        labels.append(&subtitle);
        row.append(&labels);
        let remove = icon_button("list-remove-symbolic", &tr("Remove"));
        // The position is read at the click: rows above may have gone since the bind.
        let weak = item.downgrade();
        let w = u.clone();
        remove.connect_clicked(move |_| {
            if let Some(item) = weak.upgrade() {
                remove_photo(&w, item.position() as usize);
            }
        });
        row.append(&remove);
        item.set_child(Some(&row));
        u.photo_rows_made.set(u.photo_rows_made.get() + 1);
    });
    let u = ui.clone();
    factory.connect_bind(move |_, item| {
        let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
            return;
        };
        let Some((image, title, subtitle, remove)) =
            item.child().as_ref().and_then(photo_row_parts)
        else {
            return;
        };
        let photo = u
            .state
            .borrow()
            .photos
            .items()
            .get(item.position() as usize)
            .map(|p| (p.path.clone(), p.name(), p.size));
        let Some((path, file, size)) = photo else {
            return;
        };
        title.set_text(&file);
        subtitle.set_text(&human_size(size));
        // The row itself (GTK's list item widget), named as a screen reader should say it.
        if let Some(row) = title
            .parent()
            .and_then(|labels| labels.parent())
            .and_then(|b| b.parent())
        {
            name(&row, &file);
        }
        let label = tr("Remove {name}").replace("{name}", &file);
        remove.set_tooltip_text(Some(&label));
        name(&remove, &label);
        u.thumbnails.show(&path, &image);
    });
    let u = ui.clone();
    factory.connect_unbind(move |_, item| {
        let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
            return;
        };
        if let Some((image, ..)) = item.child().as_ref().and_then(photo_row_parts) {
            u.thumbnails.hide(&image);
        }
    });
}

fn remove_photo(ui: &Rc<Ui>, index: usize) {
    if ui.state.borrow_mut().photos.remove(index).is_none() {
        return;
    }
    ui.photos_store.remove(index as u32);
    render_photo_summary(ui);
}

/// Photos listed before the window's first frame, and then at each turn of the main loop.
const PHOTO_ROWS_AT_ONCE: usize = 8;

/// Lists the photos not listed yet, a few at a time at low priority, so that the window
/// answers (input, redraws, AT-SPI) between them: 200 rows take GTK a fifth of a second.
async fn list_other_photos(ui: Rc<Ui>) {
    loop {
        let listed = ui.photos_store.n_items() as usize;
        let names: Vec<String> = ui
            .state
            .borrow()
            .photos
            .items()
            .iter()
            .skip(listed)
            .take(PHOTO_ROWS_AT_ONCE)
            .map(|p| p.name())
            .collect();
        if names.is_empty() {
            break;
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        ui.photos_store.splice(listed as u32, 0, &names);
        glib::timeout_future_with_priority(glib::Priority::LOW, std::time::Duration::ZERO).await;
    }
    tracing::debug!(
        unix_us = timing::unix_us() as u64,
        photo_rows = ui.photo_rows_made.get(),
        "photos listed"
    );
}

/// The list's entries, from the model: all of them (the view makes rows for those shown), or
/// the first `limit`.
fn render_photos(ui: &Rc<Ui>, limit: Option<usize>) {
    let names: Vec<String> = ui
        .state
        .borrow()
        .photos
        .items()
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|p| p.name())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ui.photos_store.splice(0, ui.photos_store.n_items(), &names);
    render_photo_summary(ui);
}

/// The count and size, the refused files, and Start's state (it depends on them).
fn render_photo_summary(ui: &Ui) {
    let (summary, refused) = {
        let s = ui.state.borrow();
        let refused: Vec<(String, String)> = s
            .photos
            .refused()
            .iter()
            .map(|r| (crate::model::photos::file_name(&r.path), r.reason.clone()))
            .collect();
        (s.photos.summary(), refused)
    };
    ui.photos_group.set_description(Some(&summary));
    // As tall as its rows, up to a few (GTK 4.8's list view says less than it needs).
    let count = ui.state.borrow().photos.count();
    let shown = count.min(PHOTO_ROWS_SHOWN) as i32;
    ui.photos_scroll.set_visible(count > 0);
    ui.photos_scroll
        .set_min_content_height(shown * PHOTO_ROW_HEIGHT);
    clear(&ui.refused_list);
    ui.refused_list.set_visible(!refused.is_empty());
    for (file, reason) in refused {
        let row = adw::ActionRow::new();
        row.set_use_markup(false);
        row.set_title(&tr("{name} cannot be sent").replace("{name}", &file));
        row.set_subtitle(&reason);
        row.add_css_class("error");
        row.add_prefix(&gtk::Image::from_icon_name("dialog-warning-symbolic"));
        ui.refused_list.append(&row);
    }
    render_start(ui);
}

fn add_photos(ui: &Rc<Ui>) {
    let chooser = gtk::FileChooserNative::new(
        Some(&tr("Add photos")),
        Some(&ui.window),
        gtk::FileChooserAction::Open,
        Some(&tr("_Add")),
        Some(&tr("_Cancel")),
    );
    chooser.set_select_multiple(true);
    let filter = gtk::FileFilter::new();
    filter.set_name(Some(&tr("Photos")));
    filter.add_mime_type("image/*");
    chooser.add_filter(&filter);
    let u = ui.clone();
    chooser.connect_response(move |chooser, response| {
        if response == gtk::ResponseType::Accept {
            let files = chooser.files();
            let paths: Vec<PathBuf> = (0..files.n_items())
                .filter_map(|i| files.item(i)?.downcast::<gio::File>().ok()?.path())
                .collect();
            u.state.borrow_mut().photos.add(paths);
            render_photos(&u, None);
        }
        chooser.destroy();
    });
    chooser.show();
}

// --------------------------------------------------------------------------------- account

fn apply_account(ui: &Ui, event: AccountEvent) {
    {
        let mut s = ui.state.borrow_mut();
        let account = std::mem::replace(&mut s.account, Account::Connecting);
        s.account = account.apply(event);
    }
    render_account(ui);
}

fn render_account(ui: &Ui) {
    let account = ui.state.borrow().account.clone();
    let (title, subtitle) = match &account {
        Account::Connecting => (tr("Connecting to dbxport…"), String::new()),
        Account::Unreachable { message } => (tr("dbxport cannot be reached"), message.clone()),
        Account::LoggedOut { reason } if reason.is_empty() => (
            tr("Not logged in"),
            tr("Log in to send photos to your Dropbox."),
        ),
        Account::LoggedOut { reason } => (tr("Not logged in"), reason.clone()),
        Account::LoggingIn { url } => (
            tr("Logging in…"),
            tr("Finish in your browser. If it did not open, visit {url}").replace("{url}", url),
        ),
        Account::LoggedIn {
            name,
            email,
            used,
            allocated,
        } => {
            let mut line = email.clone();
            if *allocated > 0 {
                let space = tr("{used} used of {all}, {free} free")
                    .replace("{used}", &human_size(*used))
                    .replace("{all}", &human_size(*allocated))
                    .replace("{free}", &human_size(allocated.saturating_sub(*used)));
                if !line.is_empty() {
                    line.push_str(" · ");
                }
                line.push_str(&space);
            }
            (name.clone(), line)
        }
    };
    ui.account_row.set_use_markup(false);
    ui.account_row.set_title(&title);
    ui.account_row.set_subtitle(&subtitle);
    ui.space.set_visible(account.used_fraction().is_some());
    ui.space.set_value(account.used_fraction().unwrap_or(0.0));
    ui.login.set_visible(matches!(
        account,
        Account::LoggedOut { .. } | Account::LoggingIn { .. }
    ));
    ui.other_account.set_visible(account.is_logged_in());
    render_start(ui);
}

async fn refresh_account(ui: &Rc<Ui>) {
    let Some(bus) = bus(ui) else { return };
    let a = &bus.account;
    let read = async {
        Ok::<_, zbus::Error>(AccountEvent::Properties {
            logged_in: a.logged_in().await?,
            name: a.account_name().await?,
            email: a.email().await?,
            used: a.used_bytes().await?,
            allocated: a.allocated_bytes().await?,
            status_message: a.status_message().await?,
        })
    };
    let event = match read.await {
        Ok(event) => event,
        Err(e) => {
            AccountEvent::Unreachable(crate::model::errors::zbus_trouble(&e).message().into())
        }
    };
    let logged_in_now = matches!(
        event,
        AccountEvent::Properties {
            logged_in: true,
            ..
        }
    );
    let was = ui.state.borrow().account.is_logged_in();
    apply_account(ui, event);
    render_folders(ui);
    if logged_in_now && !was {
        // Logged in since the tree was last asked for: list it (again).
        let path = ui.state.borrow_mut().tree.reload();
        list_folders(ui.clone(), path).await;
    }
}

async fn begin_login(ui: Rc<Ui>) {
    let Some(bus) = bus(&ui) else { return };
    match bus.account.begin_login(HashMap::new()).await {
        Ok(url) => {
            apply_account(&ui, AccountEvent::LoginStarted { url: url.clone() });
            gtk::show_uri(Some(&ui.window), &url, 0);
        }
        Err(e) => match classify(&e) {
            Trouble::DaemonUnreachable(m) => apply_account(&ui, AccountEvent::Unreachable(m)),
            t => apply_account(&ui, AccountEvent::LoginRefused(t.message().into())),
        },
    }
}

/// "Use another account": log out here, then log in again through the browser.
async fn other_account(ui: Rc<Ui>) {
    let Some(bus) = bus(&ui) else { return };
    if let Err(e) = bus.account.logout().await {
        ui.toasts.add_toast(adw::Toast::new(classify(&e).message()));
        return;
    }
    refresh_account(&ui).await;
    begin_login(ui).await;
}

// --------------------------------------------------------------------------------- folders

fn folder_from_dict(d: &HashMap<String, OwnedValue>) -> Option<Folder> {
    let text = |k: &str| {
        d.get(k)
            .and_then(|v| <&str>::try_from(&**v).ok())
            .map(String::from)
    };
    Some(Folder {
        name: text("name")?,
        path: text("path")?,
    })
}

async fn list_folders(ui: Rc<Ui>, path: String) {
    let Some(bus) = bus(&ui) else { return };
    let answer = bus.folders.list_folders(path.clone()).await;
    let answered = timing::unix_us();
    let answer: Result<Vec<Folder>, String> = answer
        .map(|dicts| dicts.iter().filter_map(folder_from_dict).collect())
        .map_err(|e| classify(&e).message().to_owned());
    let listed = answer.as_ref().map_or(0, Vec::len);
    let ok = answer.is_ok();
    ui.state.borrow_mut().tree.loaded(&path, answer);
    render_folders(&ui);
    if ok && timing::wanted() {
        tracing::debug!(
            unix_us = answered as u64,
            path,
            folders = listed,
            "folders answered"
        );
        timing::after_next_frame(&ui.window, move || {
            tracing::debug!(
                unix_us = timing::unix_us() as u64,
                folders = listed,
                "folders shown"
            );
        });
    }
}

/// After a move in the tree: draw it, and list the level if it is wanted.
fn after_move(ui: &Rc<Ui>, list: Option<String>) {
    ui.state.borrow_mut().folder_error = None;
    render_folders(ui);
    if let Some(path) = list {
        glib::spawn_future_local(list_folders(ui.clone(), path));
    }
}

/// New folder: the name is checked before any call; a refused one is said under the tree.
fn new_folder(ui: &Rc<Ui>, text: &str) {
    let checked = ui.state.borrow().tree.new_folder_path(text);
    match checked {
        Err(why) => {
            ui.state.borrow_mut().folder_error = Some(why);
            render_folders(ui);
        }
        Ok(path) => {
            let u = ui.clone();
            glib::spawn_future_local(async move { create_folder(&u, path).await });
        }
    }
}

async fn create_folder(ui: &Rc<Ui>, path: String) {
    let Some(bus) = bus(ui) else { return };
    match bus.folders.create_folder(path).await {
        Ok(stored) => {
            let lists = ui.state.borrow_mut().tree.created(&stored);
            ui.new_folder.set_text("");
            ui.state.borrow_mut().folder_error = None;
            render_folders(ui);
            for path in lists {
                glib::spawn_future_local(list_folders(ui.clone(), path));
            }
        }
        Err(e) => {
            ui.state.borrow_mut().folder_error = Some(classify(&e).message().to_owned());
            render_folders(ui);
        }
    }
}

fn render_folders(ui: &Rc<Ui>) {
    let (chosen, browsing, level, error, logged_in, uses_profile_folder) = {
        let s = ui.state.borrow();
        (
            s.profiles.target(s.tree.chosen()).to_owned(),
            s.tree.browsing().to_owned(),
            s.tree.current().clone(),
            s.folder_error.clone(),
            s.account.is_logged_in(),
            s.profiles.uses_folder(),
        )
    };
    let shown = if chosen.is_empty() {
        tr("Photos go to the top of your Dropbox")
    } else {
        tr("Photos go to {folder}").replace("{folder}", &chosen)
    };
    ui.folder_group.set_description(Some(&shown));
    render_profile_folder(ui);
    ui.up.set_sensitive(!browsing.is_empty());
    clear(&ui.folder_list);
    ui.folder_status.set_use_markup(false);
    ui.folder_retry.set_visible(false);
    let status = |title: String, subtitle: String| {
        ui.folder_status.set_title(&title);
        ui.folder_status.set_subtitle(&subtitle);
        ui.folder_list.append(&ui.folder_status);
    };
    match level {
        // Listed once an account is linked (refresh_account).
        Level::NotLoaded if !logged_in => {
            status(tr("Log in to see your Dropbox folders"), String::new())
        }
        Level::NotLoaded | Level::Loading => status(tr("Loading folders…"), String::new()),
        Level::Failed(why) => {
            ui.folder_retry.set_visible(true);
            status(tr("The folders could not be listed"), why);
        }
        Level::Loaded(folders) if folders.is_empty() => status(
            tr("No folders here"),
            if uses_profile_folder {
                tr("Turn “Use the profile's folder” off to send here.")
            } else {
                tr("Photos go into this folder.")
            },
        ),
        Level::Loaded(folders) => {
            for folder in folders {
                let row = adw::ActionRow::new();
                row.set_use_markup(false);
                row.set_title(&folder.name);
                let open = icon_button(
                    "go-next-symbolic",
                    &tr("Open folder {name}").replace("{name}", &folder.name),
                );
                row.add_suffix(&open);
                row.set_activatable_widget(Some(&open));
                let u = ui.clone();
                open.connect_clicked(move |_| {
                    let list = u.state.borrow_mut().tree.enter(&folder.path);
                    after_move(&u, list);
                });
                ui.folder_list.append(&row);
            }
        }
    }
    ui.folder_error.set_visible(error.is_some());
    ui.folder_error.set_text(error.as_deref().unwrap_or(""));
}

// --------------------------------------------------------------------------------- options

fn render_options(ui: &Ui) {
    let o = ui.state.borrow().options.clone();
    ui.rendering.set(true);
    let resized = matches!(o.size, Size::Resized { .. });
    let selected = match (o.size, o.preset_index()) {
        (Size::Original, _) => Some(0),
        (Size::Resized { .. }, Some(i)) => Some(i + 1),
        // Another dimension, typed in the spin button: no preset is pressed.
        (Size::Resized { .. }, None) => None,
    };
    for (i, b) in ui.size_buttons.iter().enumerate() {
        b.set_active(Some(i) == selected);
    }
    ui.max_dimension.set_value(f64::from(o.resize_memory.0));
    ui.quality.set_value(f64::from(o.resize_memory.1));
    ui.max_dimension.set_sensitive(resized);
    ui.quality.set_sensitive(resized);
    ui.strip.set_active(o.strip_location);
    ui.link.set_active(o.share_link);
    ui.conflict
        .set_selected(options::conflict_index(o.conflict));
    ui.profile
        .set_selected(ui.state.borrow().profiles.selected());
    ui.rendering.set(false);
}

/// The "Use the profile's folder" row: shown when the chosen profile has a folder.
fn render_profile_folder(ui: &Ui) {
    let (folder, on) = {
        let s = ui.state.borrow();
        (
            s.profiles.folder().map(str::to_owned),
            s.profiles.uses_folder(),
        )
    };
    ui.rendering.set(true);
    ui.profile_folder_list.set_visible(folder.is_some());
    ui.profile_folder_row
        .set_subtitle(folder.as_deref().unwrap_or_default());
    ui.profile_folder.set_active(on);
    ui.rendering.set(false);
}

/// The daemon's export profiles (an older daemon without `ListProfiles`, or none configured:
/// the drop-down stays hidden).
async fn load_profiles(ui: &Rc<Ui>, bus: &Bus) {
    let listed = match bus.uploader.list_profiles().await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::debug!(error = %e, "no export profiles listed");
            return;
        }
    };
    let labels = {
        let mut s = ui.state.borrow_mut();
        let State {
            profiles, options, ..
        } = &mut *s;
        profiles.set_profiles(
            listed
                .into_iter()
                .map(|(name, d)| Profile::from_entry(name, &d))
                .collect(),
            options,
        );
        (!profiles.profiles().is_empty()).then(|| profiles.labels())
    };
    if let Some(labels) = labels {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        ui.rendering.set(true);
        ui.profile.set_model(Some(&gtk::StringList::new(&labels)));
        ui.rendering.set(false);
        ui.profile.set_visible(true);
    }
    render_options(ui);
    render_folders(ui);
}

// ------------------------------------------------------------------------------ start, batch

/// Start's state and the reason it cannot go, if any.
fn render_start(ui: &Ui) {
    let (error, blocked, starting) = {
        let s = ui.state.borrow();
        let blocked = if s.photos.count() == 0 {
            Some(tr("No photos to send: add some first."))
        } else {
            s.account.blocks_start(s.photos.total_size())
        };
        let (error, starting) = match &s.stage {
            Stage::Choosing { error } => (error.clone(), false),
            _ => (None, true),
        };
        (
            error.or_else(|| blocked.clone()),
            blocked.is_some(),
            starting,
        )
    };
    ui.start.set_sensitive(!blocked && !starting);
    ui.start_error.set_visible(error.is_some());
    ui.start_error.set_text(error.as_deref().unwrap_or(""));
}

async fn start(ui: &Rc<Ui>) {
    let Some(bus) = bus(ui) else { return };
    let prepared = {
        let s = ui.state.borrow();
        if !matches!(s.stage, Stage::Choosing { .. }) {
            return;
        }
        let names: Vec<String> = s.photos.items().iter().map(|p| p.name()).collect();
        let target = s.profiles.target(s.tree.chosen());
        upload_call(&s.photos, target, &s.options).map(|call| {
            let keep = Remembered::from_choices(s.tree.chosen(), &s.options);
            (
                call,
                names,
                s.options.share_link,
                keep,
                s.remembered_at.clone(),
            )
        })
    };
    let (call, names, wants_link, keep, at) = match prepared {
        Ok(p) => p,
        Err(why) => {
            stage_event(ui, StageEvent::Start);
            stage_event(ui, StageEvent::NotQueued(why));
            return;
        }
    };
    if let Some(at) = at {
        // Small, but a disk write: off the main loop.
        let saved = gio::spawn_blocking(move || keep.save(&at)).await;
        if let Ok(Err(e)) = saved {
            ui.toasts.add_toast(adw::Toast::new(&e.to_string()));
        }
    }
    stage_event(ui, StageEvent::Start);
    let reply = match call.paths {
        Paths::Text(paths) => {
            bus.uploader
                .upload(paths, call.remote_folder, call.options)
                .await
        }
        Paths::Bytes(paths) => {
            bus.uploader
                .upload_paths(paths, call.remote_folder, call.options)
                .await
        }
    };
    match reply {
        Ok((batch, jobs)) => {
            let progress = BatchProgress::new(batch, &jobs, &names);
            stage_event(
                ui,
                StageEvent::Queued {
                    batch: Box::new(progress),
                    wants_link,
                },
            );
            let early = std::mem::take(&mut ui.state.borrow_mut().early);
            for e in early {
                match e {
                    Early::State {
                        job,
                        batch,
                        state,
                        message,
                    } => on_state(ui, job, batch, &state, &message),
                    Early::Finished { batch, summary } => on_finished(ui, batch, &summary),
                }
            }
        }
        Err(e) => stage_event(ui, StageEvent::NotQueued(classify(&e).message().to_owned())),
    }
}

/// How many signals are kept while `Upload` has not answered.
const EARLY_LIMIT: usize = 4096;

fn on_state(ui: &Ui, job: u64, batch: u64, state: &str, message: &str) {
    let row = {
        let mut s = ui.state.borrow_mut();
        if matches!(s.stage, Stage::Starting) {
            if s.early.len() < EARLY_LIMIT {
                s.early.push(Early::State {
                    job,
                    batch,
                    state: state.into(),
                    message: message.into(),
                });
            }
            return;
        }
        s.stage
            .batch_mut()
            .and_then(|b| b.state(job, batch, state, message))
    };
    if let Some(row) = row {
        render_file_row(ui, row);
        stage_event(ui, StageEvent::Changed);
    }
}

fn on_progress(ui: &Ui, job: u64, sent: u64, total: u64) {
    let row = ui
        .state
        .borrow_mut()
        .stage
        .batch_mut()
        .and_then(|b| b.progress(job, sent, total, Instant::now()));
    if let Some(row) = row {
        render_file_row(ui, row);
        render_batch_header(ui);
    }
}

fn on_finished(ui: &Ui, batch: u64, summary: &HashMap<String, OwnedValue>) {
    let ended = {
        let mut s = ui.state.borrow_mut();
        if matches!(s.stage, Stage::Starting) {
            if s.early.len() < EARLY_LIMIT
                && let Ok(summary) = summary
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.try_clone()?)))
                    .collect::<Result<HashMap<_, _>, zbus::zvariant::Error>>()
            {
                s.early.push(Early::Finished { batch, summary });
            }
            return;
        }
        let summary = dbxport::service::summary_from_dict(summary);
        s.stage
            .batch_mut()
            .is_some_and(|b| b.finished(batch, summary))
    };
    if ended {
        stage_event(ui, StageEvent::Changed);
    }
}

async fn cancel(ui: Rc<Ui>) {
    let (Some(bus), Some(batch)) = (bus(&ui), ui.state.borrow().stage.batch().map(|b| b.batch))
    else {
        return;
    };
    if let Err(e) = bus.uploader.cancel(batch).await {
        ui.toasts.add_toast(adw::Toast::new(classify(&e).message()));
    }
}

async fn retry_failed(ui: Rc<Ui>) {
    let (Some(bus), Some(batch)) = (bus(&ui), ui.state.borrow().stage.batch().map(|b| b.batch))
    else {
        return;
    };
    match bus.uploader.retry(batch).await {
        Ok(_) => stage_event(&ui, StageEvent::Retried),
        Err(e) => ui.toasts.add_toast(adw::Toast::new(classify(&e).message())),
    }
}

fn file_line(phase: Phase, fraction: f64, message: &str) -> String {
    match phase {
        Phase::Uploading => format!("{} {:.0} %", phase_label(phase), fraction * 100.0),
        Phase::Failed | Phase::Waiting if !message.is_empty() => {
            format!("{}: {message}", phase_label(phase))
        }
        _ => phase_label(phase),
    }
}

fn render_file_row(ui: &Ui, i: usize) {
    let line = {
        let s = ui.state.borrow();
        let Some(file) = s.stage.batch().and_then(|b| b.files().get(i)) else {
            return;
        };
        file_line(file.phase, file.fraction(), &file.message)
    };
    if let Some(row) = ui.file_rows.borrow().get(i) {
        row.set_subtitle(&line);
    }
}

fn render_batch_header(ui: &Ui) {
    let s = ui.state.borrow();
    let Some(batch) = s.stage.batch() else { return };
    ui.batch_bar.set_fraction(batch.fraction());
    let status = batch.status_line();
    ui.batch_status.set_text(&status);
}

fn render_stage(ui: &Ui) {
    let (page, building) = {
        let s = ui.state.borrow();
        match &s.stage {
            Stage::Choosing { .. } | Stage::Starting => ("choose", None),
            Stage::Sending { batch, .. } | Stage::Ended { batch } => (
                "progress",
                (ui.file_rows.borrow().len() != batch.files().len()).then(|| {
                    batch
                        .files()
                        .iter()
                        .map(|f| f.name.clone())
                        .collect::<Vec<_>>()
                }),
            ),
        }
    };
    ui.stack.set_visible_child_name(page);
    render_start(ui);
    if page == "choose" {
        return;
    }
    if let Some(names) = building {
        clear(&ui.files_list);
        let mut rows = ui.file_rows.borrow_mut();
        rows.clear();
        for file in names {
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&file);
            ui.files_list.append(&row);
            rows.push(row);
        }
    }
    let count = ui.file_rows.borrow().len();
    for i in 0..count {
        render_file_row(ui, i);
    }
    render_batch_header(ui);
    let s = ui.state.borrow();
    let folder = s.tree.chosen().to_owned();
    let folder = if folder.is_empty() {
        "/".to_owned()
    } else {
        folder
    };
    let (title, ended, failures, link) = match &s.stage {
        Stage::Sending { .. } => (
            tr("Sending to {folder}").replace("{folder}", &folder),
            false,
            Vec::new(),
            None,
        ),
        Stage::Ended { batch } => {
            let c = batch.counts();
            let title = if c.failed == 0 && c.cancelled == 0 {
                tr("All {n} sent to {folder}")
                    .replace("{n}", &c.done.to_string())
                    .replace("{folder}", &folder)
            } else {
                tr("{done} sent, {failed} failed, {cancelled} cancelled")
                    .replace("{done}", &c.done.to_string())
                    .replace("{failed}", &c.failed.to_string())
                    .replace("{cancelled}", &c.cancelled.to_string())
            };
            let failures: Vec<String> = batch
                .failures()
                .iter()
                .map(|f| format!("{}: {}", f.name, f.message))
                .collect();
            let link = batch.summary().and_then(|sum| {
                sum.link
                    .clone()
                    .map(Ok)
                    .or_else(|| sum.link_error.clone().map(Err))
            });
            (title, true, failures, link)
        }
        _ => return,
    };
    drop(s);
    ui.batch_title.set_text(&title);
    ui.cancel.set_visible(!ended);
    ui.retry_failed.set_visible(ended && !failures.is_empty());
    ui.failures.set_visible(!failures.is_empty());
    let text = failures.join("\n");
    ui.failures.set_text(&text);
    ui.link_list.set_visible(link.is_some());
    match link {
        Some(Ok(url)) => {
            ui.link_row.set_subtitle(&url);
        }
        Some(Err(why)) => {
            ui.link_row.set_title(&tr("No shared link"));
            ui.link_row.set_subtitle(&why);
        }
        None => {}
    }
}

// ------------------------------------------------------------------------------- the daemon

/// Connects, subscribes to the batch signals (before any `Upload`, so none is missed), reads
/// the account (the first call: it starts the daemon by activation), which lists the tree.
async fn connect(ui: Rc<Ui>) {
    let bus = match Bus::connect().await {
        Ok(bus) => bus,
        Err(t) => {
            apply_account(&ui, AccountEvent::Unreachable(t.message().into()));
            return;
        }
    };
    *ui.bus.borrow_mut() = Some(bus.clone());
    follow(&ui, &bus).await;
    load_profiles(&ui, &bus).await;
    // Logged in, this lists the tree (once); logged out, the tree waits for the login.
    refresh_account(&ui).await;
}

/// One task per signal stream, each applying what it hears to the model as it comes.
async fn follow(ui: &Rc<Ui>, bus: &Bus) {
    let u = &bus.uploader;
    let (Ok(mut states), Ok(mut progress), Ok(mut finished)) = (
        u.receive_job_state_changed().await,
        u.receive_job_progress().await,
        u.receive_batch_finished().await,
    ) else {
        ui.toasts.add_toast(adw::Toast::new(&tr(
            "Cannot follow the uploads' progress on the bus; they go on in the daemon.",
        )));
        return;
    };
    let w = ui.clone();
    glib::spawn_future_local(async move {
        while let Some(signal) = states.next().await {
            if let Ok(a) = signal.args() {
                on_state(&w, a.job, a.batch, a.state, a.message);
            }
        }
    });
    let w = ui.clone();
    glib::spawn_future_local(async move {
        while let Some(signal) = progress.next().await {
            if let Ok(a) = signal.args() {
                on_progress(&w, a.job, a.sent, a.total);
            }
        }
    });
    let w = ui.clone();
    glib::spawn_future_local(async move {
        while let Some(signal) = finished.next().await {
            if let Ok(a) = signal.args() {
                on_finished(&w, a.batch, &a.summary);
            }
        }
    });
    if let Ok(mut logins) = bus.account.receive_login_finished().await {
        let w = ui.clone();
        glib::spawn_future_local(async move {
            while let Some(signal) = logins.next().await {
                if let Ok(a) = signal.args() {
                    apply_account(
                        &w,
                        AccountEvent::LoginFinished {
                            ok: a.ok,
                            error: a.error.to_owned(),
                        },
                    );
                    refresh_account(&w).await;
                }
            }
        });
    }
    if let Ok(mut changes) = bus.properties.receive_properties_changed().await {
        let w = ui.clone();
        glib::spawn_future_local(async move {
            while let Some(signal) = changes.next().await {
                if let Ok(a) = signal.args()
                    && a.interface_name.as_str() == "io.github.dbxport1.Account"
                {
                    refresh_account(&w).await;
                }
            }
        });
    }
}
