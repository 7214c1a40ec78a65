#!/usr/bin/python3
"""Drives the real dbxport-export window through the accessibility tree (AT-SPI), as a
person with a keyboard or a screen reader would: it finds controls by their accessible names
and presses them, and waits (with a deadline) for what the window then says.

Usage: drive.py SCENARIO [ARGS...]; the environment holds the session bus and the display.
Screenshots are read from Xvfb's frame buffer ($FRAMEBUFFER, an XWD file) and written as PNG
to $SHOTS. Every failure prints the window's accessible tree, to see what was there instead.
"""

import os
import struct
import sys
import time
import zlib

import pyatspi

DEADLINE = 60.0


def log(*args):
    print(*args, flush=True)


def app():
    desktop = pyatspi.Registry.getDesktop(0)
    for i in range(desktop.childCount):
        a = desktop.getChildAtIndex(i)
        if a is not None and a.name == "dbxport-export":
            return a
    return None


def walk(node, depth=0):
    yield node, depth
    try:
        count = node.childCount
    except Exception:
        return
    for i in range(count):
        try:
            child = node.getChildAtIndex(i)
        except Exception:
            continue
        if child is not None:
            yield from walk(child, depth + 1)


def showing(node):
    # GTK 4.8 reports "showing" for the window only; "visible" is what it keeps per widget.
    try:
        return node.getState().contains(pyatspi.STATE_VISIBLE)
    except Exception:
        return False


def dump():
    a = app()
    if a is None:
        return "(no dbxport-export on the AT-SPI bus)"
    lines = []
    for node, depth in walk(a):
        try:
            states = [pyatspi.stateToString(st) for st in node.getState().getStates()]
            lines.append("  " * depth + f"{node.getRoleName()} {node.name!r} {states}")
        except Exception:
            pass
    return "\n".join(lines)


def fail(what):
    log(f"FAILED: {what}\n--- the window's tree:\n{dump()}")
    sys.exit(1)


def wait(what, check, limit=DEADLINE):
    start = time.monotonic()
    while True:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        if time.monotonic() - start > limit:
            fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def find(role, name, prefix=False, contains=False):
    """A visible accessible of this role whose name is `name` (or starts with it, or holds
    it)."""
    a = app()
    if a is None:
        return None
    for node, _ in walk(a):
        try:
            if node.getRoleName() != role:
                continue
            n = node.name or ""
        except Exception:
            continue
        # GTK 4.8 says a labelled button's name twice ("Start Start"): both forms match.
        if contains:
            matches = name in n
        elif prefix:
            matches = n.startswith(name)
        else:
            matches = n in (name, f"{name} {name}")
        if matches and showing(node):
            return node
    return None


def wait_for(role, name, prefix=False, limit=DEADLINE, contains=False):
    return wait(f"{role} {name!r}", lambda: find(role, name, prefix, contains), limit)


def press(node):
    action = node.queryAction()
    for i in range(action.nActions):
        if action.getName(i) in ("click", "press", "activate", "toggle"):
            action.doAction(i)
            return
    fail(f"{node.name!r} has no click action")


def press_button(name, prefix=False):
    """prefix: GTK appends a row's title to the name of the button that activates the row."""
    log(f"press {name}")
    press(wait_for("push button", name, prefix))


def pressed(node):
    states = node.getState()
    return states.contains(pyatspi.STATE_CHECKED) or states.contains(pyatspi.STATE_PRESSED)


def type_into(node, text):
    """Keys as a keyboard sends them, into the widget with the focus: GTK 4.8 offers neither
    EditableText nor GrabFocus over AT-SPI, so the window's own button has moved the focus
    (the click action returns once its handler ran)."""
    pyatspi.Registry.generateKeyboardEvent(0, text, pyatspi.KEY_STRING)


def key(keysym):
    pyatspi.Registry.generateKeyboardEvent(keysym, None, pyatspi.KEY_SYM)


RETURN = 0xFF0D
TAB = 0xFF09


def shot(name):
    """Xvfb's frame buffer (XWD, 32 bits per pixel) as a PNG."""
    path = os.environ["FRAMEBUFFER"]
    data = open(path, "rb").read()
    header = struct.unpack(">25I", data[:100])
    header_size, width, height = header[0], header[4], header[5]
    bits_per_pixel, bytes_per_line, ncolors = header[11], header[12], header[19]
    if bits_per_pixel != 32:
        fail(f"frame buffer has {bits_per_pixel} bits per pixel")
    start = header_size + ncolors * 12
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line:start + y * bytes_per_line + width * 4]
        rgb = bytearray(width * 3)
        rgb[0::3] = line[2::4]
        rgb[1::3] = line[1::4]
        rgb[2::3] = line[0::4]
        rows.append(b"\x00" + bytes(rgb))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    out = os.path.join(os.environ["SHOTS"], f"{name}.png")
    with open(out, "wb") as f:
        f.write(png)
    log(f"screenshot {out}")


def window():
    return wait_for("frame", "Send to Dropbox")


def scroll_to(node):
    try:
        node.queryComponent().scrollTo(pyatspi.SCROLL_ANYWHERE)
    except Exception:
        pass


# ---------------------------------------------------------------------------------- scenarios

def export_resized(folder_a, folder_b, new_folder):
    """Two folder levels down, a new folder, 1600 px, Start, to the end."""
    window()
    wait_for("push button", f"Open folder {folder_a}", prefix=True)
    shot("folders")
    press_button(f"Open folder {folder_a}", prefix=True)
    press_button(f"Open folder {folder_b}", prefix=True)
    wait_for("label", f"Photos go to /{folder_a}/{folder_b}")
    wait_for("list item", "No folders here", prefix=True)
    press_button("New folder…")
    entry = wait_for("text", "New folder name", prefix=True)
    type_into(entry, new_folder)
    key(RETURN)
    wait_for("label", f"Photos go to /{folder_a}/{folder_b}/{new_folder}")
    log("folder created")
    # On with the keyboard, as a person would: the scrolled page follows the focus down to the
    # options, which the screenshot then shows.
    for _ in range(10):
        key(TAB)
    size = wait_for("push button", "1600 px", prefix=True)
    scroll_to(size)
    press(size)
    wait("1600 px pressed", lambda: pressed(find("push button", "1600 px", prefix=True)))
    shot("options")
    press_button("Start")
    wait_for("label", "Sending to", prefix=True, limit=30)
    shot("progress")
    wait_for("label", f"All 3 sent to /{folder_a}/{folder_b}/{new_folder}")
    shot("done")
    log("done")


def log_in():
    """Logged out: the row says so; Log in; the test plays the browser; the row fills in."""
    window()
    wait_for("label", "Not logged in")
    shot("logged-out")
    press_button("Log in")
    hint = wait_for("label", "Finish in your browser", prefix=True)
    url = hint.name.split("visit ", 1)[1].strip()
    log(f"browser opens {url.split('?')[0]}")
    import urllib.request
    # The emulator approves at once and redirects to the daemon's loopback listener.
    with urllib.request.urlopen(url, timeout=30) as page:
        log(f"the listener answered {page.status}")
    wait_for("label", "@example.com", contains=True)
    log("logged in")


def not_logged_in():
    window()
    wait_for("label", "Not logged in")
    log("the daemon answered")


def account_filled():
    window()
    wait_for("label", "@example.com", contains=True)
    log("account shown")


def listing_retry(folder):
    """The top level's listing fails: the reason and Retry; Retry lists it."""
    window()
    wait_for("label", "The folders could not be listed")
    wait_for("label", "503", contains=True)
    shot("listing-failed")
    press_button("Retry")
    wait_for("push button", f"Open folder {folder}", prefix=True)
    log("listed")


def refused_and_failed(missing, broken):
    """A file that cannot be handed over is named before Start; one the daemon cannot
    prepare fails with its reason; the rest go."""
    window()
    wait_for("label", f"{missing} cannot be sent")
    press(wait_for("push button", "1600 px", prefix=True))
    press_button("Start")
    wait_for("label", "2 sent, 1 failed, 0 cancelled")
    wait_for("label", broken, contains=True)
    wait_for("push button", "Retry failed")
    shot("done-with-failure")
    log("ended")


def close_during_upload():
    """Close while the batch runs: the window goes, the batch does not."""
    window()
    press_button("Start")
    wait_for("label", "Sending to", prefix=True)
    wait_for("label", "Uploading", prefix=True)
    shot("uploading")
    press_button("Close; the uploads go on", prefix=True)
    wait("the window to close", lambda: app() is None)
    log("closed")


def dump_tree():
    window()
    time.sleep(2)
    log(dump())


SCENARIOS = {
    "export-resized": export_resized,
    "log-in": log_in,
    "not-logged-in": not_logged_in,
    "account-filled": account_filled,
    "listing-retry": listing_retry,
    "refused-and-failed": refused_and_failed,
    "close-during-upload": close_during_upload,
    "dump": dump_tree,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
