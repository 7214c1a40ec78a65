//! When a frame has been drawn (the window fills in the rest of its photos, and starts the
//! thumbnails, after its first), and timestamps for the benchmark (BENCHMARKS.md, "Export
//! dialog"): debug log lines that say when the window's first frame was drawn, when a thumbnail was decoded, and when the daemon's
//! folder listing answered and was drawn. Each carries the wall-clock time in microseconds
//! (`unix_us`), so a benchmark that started the process, or watched the bus, can set them
//! against its own clock.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use gtk::prelude::*;

/// Now, as microseconds since the Unix epoch (the clock `dbus-monitor` and the benchmark use).
pub fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Whether the timing lines are wanted at all.
pub fn wanted() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// Runs `then` once, after the next frame of `widget`'s window has been painted: what was
/// changed before this call is on the screen by then. A widget not realized has no frame
/// clock: `then` runs at once, so what waits for the frame (the photo list, the thumbnails)
/// is never left waiting.
pub fn after_next_frame(widget: &impl IsA<gtk::Widget>, then: impl FnOnce() + 'static) {
    let Some(clock) = widget.frame_clock() else {
        then();
        return;
    };
    let then = Cell::new(Some(then));
    let handler: Rc<RefCell<Option<gtk::glib::SignalHandlerId>>> = Rc::default();
    let own = handler.clone();
    let id = clock.connect_after_paint(move |clock| {
        if let Some(then) = then.take() {
            then();
        }
        if let Some(id) = own.borrow_mut().take() {
            clock.disconnect(id);
        }
    });
    *handler.borrow_mut() = Some(id);
    // Nothing may have asked for a frame yet: ask, so the line is written.
    widget.queue_draw();
}
