-- Run by darktable itself (`--luacmd`), after the storage `dbxportctl install` placed has
-- loaded: imports PHOTO into the library, selects it and presses the export module's
-- "export" button, whose storage is "Dropbox (dbxport)" (darktablerc). Each message darktable
-- shows is also printed as "SHOWN …"; the storage's last one ("Dropbox: …") ends darktable.
local dt = require "darktable"

local show = dt.print
dt.print = function(message)
  show(message)
  print("SHOWN " .. message)
  io.stdout:flush()
  if string.match(message, "^Dropbox") then
    os.exit(0)
  end
end

local image = dt.database.import(PHOTO)
dt.gui.selection({ image })
dt.gui.action("lib/export/export", 0, "", "", 1.0)
