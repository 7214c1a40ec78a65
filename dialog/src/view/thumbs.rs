//! Thumbnails, loaded after the window is up, one at a time at low priority, through GIO's
//! asynchronous stream reads and gdk-pixbuf's asynchronous decoder: the window never waits for
//! one. A format gdk-pixbuf cannot read keeps the placeholder icon.

use std::path::PathBuf;

use gtk::prelude::*;
use gtk::{gdk, gio, glib};

/// Edge of a thumbnail, in logical pixels (libadwaita scales for HiDPI).
pub const SIZE: i32 = 48;

/// Fills each image with its photo's thumbnail, in order.
pub async fn load(items: Vec<(PathBuf, gtk::Image)>) {
    for (path, image) in items {
        let file = gio::File::for_path(&path);
        let Ok(stream) = file.read_future(glib::Priority::LOW).await else {
            continue;
        };
        let scale = image.scale_factor().max(1);
        let decoded = gtk::gdk_pixbuf::Pixbuf::from_stream_at_scale_future(
            &stream,
            SIZE * scale,
            SIZE * scale,
            true,
        )
        .await;
        if let Ok(pixbuf) = decoded {
            image.set_paintable(Some(&gdk::Texture::for_pixbuf(&pixbuf)));
        }
    }
}
