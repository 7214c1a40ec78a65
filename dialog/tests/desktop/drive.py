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
            # A dialog that has just ended may linger in the registry for a moment.
            try:
                pid = a.get_process_id()
            except Exception:
                continue
            if os.path.exists(f"/proc/{pid}"):
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
DOWN = 0xFF54


def framebuffer():
    """Xvfb's frame buffer (XWD, 32 bits per pixel): width, height, and the rows as RGB."""
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
        rows.append(bytes(rgb))
    return width, height, rows


def mean_luminance():
    """The screen's mean luminance, 0 (black) to 1 (white), over every 7th pixel."""
    width, height, rows = framebuffer()
    total, count = 0.0, 0
    for row in rows[::7]:
        for x in range(0, width * 3, 21):
            r, g, b = row[x], row[x + 1], row[x + 2]
            total += 0.2126 * r + 0.7152 * g + 0.0722 * b
            count += 1
    return total / count / 255.0


def shot(name):
    """Xvfb's frame buffer as a PNG."""
    width, height, rgb_rows = framebuffer()
    rows = [b"\x00" + row for row in rgb_rows]

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


def launch_time(app_name, *command):
    """Starts `command` and prints launch_ms= the time until AT-SPI reports a frame of that
    very process (by pid, so a window of an earlier launch never counts) showing: the launch as
    an outside observer sees it, the same for the dialog and a peer application."""
    import subprocess
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def frame_showing():
        desktop = pyatspi.Registry.getDesktop(0)
        for i in range(desktop.childCount):
            a = desktop.getChildAtIndex(i)
            if a is None or a.get_process_id() != proc.pid:
                continue
            for j in range(a.childCount):
                f = a.getChildAtIndex(j)
                if f is not None and f.getRole() == pyatspi.ROLE_FRAME and \
                        f.getState().contains(pyatspi.STATE_SHOWING):
                    return True
        return False

    try:
        while True:
            try:
                if frame_showing():
                    break
            except Exception:
                pass
            if time.monotonic() - start > DEADLINE:
                fail(f"no frame of {app_name} (pid {proc.pid}) showing")
            time.sleep(0.005)
        log(f"launch_ms={(time.monotonic() - start) * 1000:.1f}")
    finally:
        proc.terminate()
        proc.wait()


def focused():
    """The node that has the keyboard focus, as (role, name), or None."""
    a = app()
    if a is None:
        return None
    for node, _ in walk(a):
        try:
            if node.getState().contains(pyatspi.STATE_FOCUSED):
                return (node.getRoleName(), node.name or "")
        except Exception:
            continue
    return None


def unnamed_controls():
    """Every control (a node that can take the focus) without an accessible name of its
    own: none, or GTK's fallback, its type name ("GtkListBox"). A combo box's pop-up list is
    the combo box's own part (libadwaita's, named through the combo box), so it is skipped."""
    bad = []

    def visit(node, path, in_combo):
        try:
            role, name = node.getRoleName(), (node.name or "").strip()
            focusable = node.getState().contains(pyatspi.STATE_FOCUSABLE)
            count = node.childCount
        except Exception:
            return
        if focusable and not in_combo and (not name or name.startswith(("Gtk", "Adw"))):
            bad.append(f"{role} {name!r} at {path}")
        in_combo = in_combo or role == "combo box"
        for i in range(count):
            try:
                child = node.getChildAtIndex(i)
            except Exception:
                continue
            if child is not None:
                visit(child, path + [i], in_combo)

    a = app()
    if a is None:
        fail("no dbxport-export on the AT-SPI bus")
    visit(a, [], False)
    return bad


def check_names(where):
    bad = unnamed_controls()
    if bad:
        fail(f"controls without an accessible name ({where}):\n" + "\n".join(bad))
    log(f"every control has an accessible name ({where})")


def tab_to(target_role, target_name, limit=80):
    """Presses Tab until the focus is on the control named so; returns how many presses. A
    focus GTK 4.8 does not report over AT-SPI (the inside of a libadwaita entry row) counts as
    "somewhere else"."""
    def where():
        return focused() or ("(not reported)", "")
    before = where()
    for presses in range(limit + 1):
        if before is not None and before[0] == target_role and \
                before[1] in (target_name, f"{target_name} {target_name}"):
            return presses
        key(TAB)
        # The focus moves when GTK has handled the key: wait for it, with a deadline.
        after = wait("the focus to move", lambda: (lambda f: f if f != before else None)(where()),
                     limit=10)
        log(f"Tab → {after[0]} {after[1]!r}")
        before = after
    fail(f"{target_name!r} not reached in {limit} Tab presses")


def batch_title(pattern):
    """A label matching the regular expression, returned with its groups."""
    import re
    a = app()
    for node, _ in walk(a):
        try:
            if node.getRoleName() == "label" and showing(node):
                m = re.fullmatch(pattern, node.name or "")
                if m:
                    return m
        except Exception:
            continue
    return None


def cancel_during_upload():
    """Cancel while the batch runs: the window says what was cancelled."""
    window()
    press_button("Start")
    wait_for("label", "Uploading", prefix=True)
    press_button("Cancel")
    m = wait("the batch to end with files cancelled",
             lambda: (lambda m: m if m and int(m.group(3)) > 0 else None)(
                 batch_title(r"(\d+) sent, (\d+) failed, (\d+) cancelled")))
    log(f"ended: {m.group(0)}")


def retry_failed(unreadable, count):
    """A file fails (unreadable); the person fixes it and presses Retry failed: it is sent."""
    window()
    press_button("Start")
    wait_for("label", f"{int(count) - 1} sent, 1 failed, 0 cancelled")
    wait_for("label", os.path.basename(unreadable), contains=True)
    os.chmod(unreadable, 0o644)
    log("the file fixed")
    press_button("Retry failed")
    wait_for("label", f"All {count} sent to", prefix=True)
    log("all sent")


def copy_link(folder):
    """Into a folder, with a shared link: at the end, Copy puts the link on the clipboard."""
    import subprocess
    window()
    press_button(f"Open folder {folder}", prefix=True)
    wait_for("label", f"Photos go to /{folder}")
    switch = wait_for("check box", "Make a shared link")
    press(switch)
    wait("the link switch on", lambda: find("check box", "Make a shared link").getState()
         .contains(pyatspi.STATE_CHECKED))
    press_button("Start")
    wait_for("label", "All ", prefix=True)
    shown = wait_for("label", "https://", prefix=True).name
    press_button("Copy")

    def clipboard():
        out = subprocess.run(["xclip", "-o", "-selection", "clipboard"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout if out.returncode == 0 and out.stdout else None

    text = wait("the clipboard to hold text", clipboard)
    log(f"shown={shown}")
    log(f"clipboard={text}")


def keyboard_only(folder):
    """No pointer: Tab to Start and Enter; every control named, before and after."""
    window()
    # The tree listed: the focus chain is complete.
    wait_for("push button", f"Open folder {folder}", prefix=True)
    check_names("choosing")
    presses = tab_to("push button", "Start")
    log(f"Start reached with {presses} Tab presses")
    key(RETURN)
    wait_for("label", "All 1 sent to", prefix=True)
    check_names("done")


def profile_export(label, target, count):
    """Choose an export profile from its drop-down (by keyboard, as a person would): its
    folder is used, shown as such; Start; every photo sent."""
    window()
    wait_for("combo box", "Export profile", prefix=True)
    # GTK 4.8 gives a combo box no action over AT-SPI: Tab to it and open it with Enter.
    tab_to("combo box", "Export profile")
    key(RETURN)
    # The pop-up lists the profiles; the keyboard is on the row chosen now ("No profile").
    wait_for("label", label)
    key(DOWN)
    key(RETURN)
    switch = wait_for("check box", "Use the profile's folder")
    wait("the profile's folder in use", lambda: find("check box", "Use the profile's folder")
         .getState().contains(pyatspi.STATE_CHECKED))
    wait_for("label", f"Photos go to {target}")
    shot("profile")
    log(f"profile chosen: {switch.name}")
    press_button("Start")
    wait_for("label", f"All {count} sent to", prefix=True)
    log("all sent")


def style_shot(name, folder):
    """A screenshot once the folders are listed; prints the screen's mean luminance and the
    window's size in pixels."""
    import re
    import subprocess
    window()
    wait_for("push button", f"Open folder {folder}", prefix=True)
    shot(name)
    log(f"luminance={mean_luminance():.3f}")
    tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout
    for line in tree.splitlines():
        if "Send to Dropbox" in line:
            m = re.search(r"(\d+)x(\d+)\+", line)
            if m:
                log(f"window={m.group(1)}x{m.group(2)}")
                break


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
    "launch-time": launch_time,
    "cancel-during-upload": cancel_during_upload,
    "retry-failed": retry_failed,
    "copy-link": copy_link,
    "keyboard-only": keyboard_only,
    "style-shot": style_shot,
    "profile-export": profile_export,
    "dump": dump_tree,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
