//! Thumbnails, loaded lazily: only for the photo rows the list view has bound (GTK 4.8's binds
//! up to 200, whatever it shows; past that, more photos cost nothing here), one at a time,
//! after the window is up, decoded by gdk-pixbuf on GIO's worker threads.
//! A decoded one is kept for the rows that show it again; a format gdk-pixbuf cannot read
//! keeps the placeholder icon. The window never waits for one (BENCHMARKS.md, "Export
//! dialog").

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use gtk::prelude::*;
use gtk::{gdk, gio, glib};

use super::timing;

/// Edge of a thumbnail, in logical pixels (libadwaita scales for HiDPI).
pub const SIZE: i32 = 48;

/// The placeholder shown until (or unless) a thumbnail is decoded.
pub const PLACEHOLDER: &str = "image-x-generic-symbolic";

/// The thumbnails decoded, the images showing each photo now, and what is still to decode.
#[derive(Default)]
pub struct Thumbnails {
    decoded: RefCell<HashMap<PathBuf, Option<gdk::Texture>>>,
    shown: RefCell<HashMap<PathBuf, glib::WeakRef<gtk::Image>>>,
    queue: RefCell<VecDeque<PathBuf>>,
    /// Set once the window's first frame is drawn: nothing is decoded before.
    started: Cell<bool>,
    loading: Cell<bool>,
    decoded_count: Cell<usize>,
}

impl Thumbnails {
    /// A row now shows `path` in `image`: its thumbnail if decoded, else the placeholder and
    /// the photo queued.
    pub fn show(self: &Rc<Self>, path: &Path, image: &gtk::Image) {
        match self.decoded.borrow().get(path) {
            Some(Some(texture)) => set_thumbnail(image, texture),
            Some(None) => set_placeholder(image),
            None => {
                set_placeholder(image);
                let mut queue = self.queue.borrow_mut();
                if !queue.iter().any(|p| p == path) {
                    queue.push_back(path.to_path_buf());
                }
            }
        }
        {
            let mut shown = self.shown.borrow_mut();
            // A row reused for another photo: the image shows this one only.
            shown.retain(|_, w| w.upgrade().as_ref() != Some(image));
            shown.insert(path.to_path_buf(), image.downgrade());
        }
        self.drain_soon();
    }

    /// The window is up: decode what the rows shown ask for, from now on.
    pub fn start(self: &Rc<Self>) {
        self.started.set(true);
        self.drain_soon();
    }

    fn drain_soon(self: &Rc<Self>) {
        if self.started.get() && !self.queue.borrow().is_empty() && !self.loading.replace(true) {
            let me = self.clone();
            glib::spawn_future_local(async move { me.drain().await });
        }
    }

    /// The row of `image` shows no photo any more (scrolled away, or removed): what it
    /// showed is not decoded for it.
    pub fn hide(&self, image: &gtk::Image) {
        let mut shown = self.shown.borrow_mut();
        shown.retain(|_, w| w.upgrade().as_ref() != Some(image));
        self.queue.borrow_mut().retain(|p| shown.contains_key(p));
    }

    async fn drain(self: Rc<Self>) {
        loop {
            let next = self.queue.borrow_mut().pop_front();
            let Some(path) = next else { break };
            if self.decoded.borrow().contains_key(&path) {
                continue;
            }
            let scale = self
                .shown
                .borrow()
                .get(&path)
                .and_then(|w| w.upgrade())
                .map_or(1, |i| i.scale_factor().max(1));
            let texture = decode(&path, scale).await;
            if let Some(texture) = &texture {
                if self.decoded_count.get() == 0 {
                    // The benchmark shows this comes after "window shown".
                    tracing::debug!(
                        unix_us = timing::unix_us() as u64,
                        "first thumbnail decoded"
                    );
                }
                self.decoded_count.set(self.decoded_count.get() + 1);
                if let Some(image) = self.shown.borrow().get(&path).and_then(|w| w.upgrade()) {
                    set_thumbnail(&image, texture);
                }
            }
            self.decoded.borrow_mut().insert(path, texture);
        }
        self.loading.set(false);
        tracing::debug!(
            unix_us = timing::unix_us() as u64,
            decoded = self.decoded_count.get(),
            "thumbnails done"
        );
    }
}

/// The placeholder, dimmed: a symbolic icon at a thumbnail's size is heavy.
fn set_placeholder(image: &gtk::Image) {
    image.set_icon_name(Some(PLACEHOLDER));
    image.add_css_class("dim-label");
}

fn set_thumbnail(image: &gtk::Image, texture: &gdk::Texture) {
    image.set_paintable(Some(texture));
    image.remove_css_class("dim-label");
}

/// The photo at `path` scaled into SIZE × SIZE device pixels, or None if it cannot be read.
/// Decoded on GIO's worker threads: gdk-pixbuf's own asynchronous loader decodes on the main
/// loop, chunk by chunk, which kept the window from answering (and AT-SPI from seeing it) for
/// a quarter of a second after the first frame with 200 photos (BENCHMARKS.md).
async fn decode(path: &Path, scale: i32) -> Option<gdk::Texture> {
    let path = path.to_path_buf();
    let edge = SIZE * scale;
    // A pixbuf cannot cross threads; its pixels can.
    let (width, height, alpha, stride, pixels) = gio::spawn_blocking(move || {
        let pixbuf = gtk::gdk_pixbuf::Pixbuf::from_file_at_scale(&path, edge, edge, true).ok()?;
        Some((
            pixbuf.width(),
            pixbuf.height(),
            pixbuf.has_alpha(),
            usize::try_from(pixbuf.rowstride()).ok()?,
            pixbuf.read_pixel_bytes(),
        ))
    })
    .await
    .ok()??;
    let format = if alpha {
        gdk::MemoryFormat::R8g8b8a8
    } else {
        gdk::MemoryFormat::R8g8b8
    };
    Some(gdk::MemoryTexture::new(width, height, format, &pixels, stride).upcast())
}
