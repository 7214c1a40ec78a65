--[[
  dbxport.lua: a darktable export storage, "Dropbox (dbxport)".

  darktable exports the selected images as the export module says (format, size, quality);
  this storage then hands the exported files to dbxport's daemon, which uploads them to
  Dropbox with its queue, retries and verification. The daemon copies each file into its own
  spool before it answers (`dbxportctl upload --spool`), so darktable's temporary files are
  removed as soon as it has answered; the uploads go on even if darktable is closed.

  Installed by `dbxportctl install` as ~/.config/darktable/lua/dbxport.lua, with a line
  `require "dbxport"` in ~/.config/darktable/luarc; `dbxportctl uninstall` takes both out.
  The line below names the dbxportctl that install ran from.

  Options (in the export module, under the storage): the Dropbox folder (the last one used is
  remembered), remove location (GPS) from what is uploaded, what to do when a name is taken,
  and make a shared link to the folder. The photo is darktable's export, sent untouched
  otherwise (`--original`): its size and quality are already the export module's.
]]

local dbxportctl = "dbxportctl"

local dt = require "darktable"

local MODULE = "dbxport"

-- darktable's gettext when it has it, else the text itself.
local function tr(text)
  if dt.gettext and dt.gettext.gettext then
    return dt.gettext.gettext(text)
  end
  return text
end

-- One word for sh: single quotes hold anything but a single quote, which is closed, escaped
-- and reopened. Names with spaces, quotes, `$` or `*` reach dbxportctl as they are.
local function sh_quote(text)
  return "'" .. string.gsub(text, "'", "'\\''") .. "'"
end

-- What `--conflict` takes, in the order the combobox shows them.
local CONFLICTS = { "skip-identical", "rename", "overwrite", "replace" }

local function conflict_index(name)
  for i, value in ipairs(CONFLICTS) do
    if value == name then
      return i
    end
  end
  return 1
end

local function read_pref(key, kind, default)
  local value = dt.preferences.read(MODULE, key, kind)
  if kind == "string" and (value == nil or value == "") then
    return default
  end
  return value
end

local folder_entry = dt.new_widget("entry"){
  text = read_pref("folder", "string", ""),
  placeholder = tr("default folder (upload.remote_folder)"),
  tooltip = tr("the Dropbox folder, e.g. /Photos/2024 or /Photos/{year}/{date}; empty: dbxport's default folder"),
  editable = true,
}

local strip_location = dt.new_widget("check_button"){
  label = tr("remove location"),
  tooltip = tr("remove the GPS location from what is uploaded"),
  value = read_pref("strip_location", "bool", false),
}

local conflict = dt.new_widget("combobox"){
  label = tr("name taken"),
  tooltip = tr("when a file of that name is already in the Dropbox folder"),
  selected = conflict_index(read_pref("conflict", "string", "skip-identical")),
  "skip-identical", "rename", "overwrite", "replace",
}

local share_link = dt.new_widget("check_button"){
  label = tr("make a shared link"),
  tooltip = tr("create (or reuse) a shared link to the folder and show it when the upload ends"),
  value = read_pref("share_link", "bool", false),
}

local widget = dt.new_widget("box"){
  orientation = "vertical",
  folder_entry,
  strip_location,
  conflict,
  share_link,
}

-- Every format darktable writes is a file dbxport can send as it is.
local function supported(storage, format)
  return true
end

-- The options are read once, when the export starts, and remembered for the next one.
local function initialize(storage, format, images, high_quality, extra_data)
  extra_data.folder = folder_entry.text or ""
  extra_data.strip_location = strip_location.value
  extra_data.conflict = CONFLICTS[conflict.selected] or "skip-identical"
  extra_data.share_link = share_link.value
  dt.preferences.write(MODULE, "folder", "string", extra_data.folder)
  dt.preferences.write(MODULE, "strip_location", "bool", extra_data.strip_location)
  dt.preferences.write(MODULE, "conflict", "string", extra_data.conflict)
  dt.preferences.write(MODULE, "share_link", "bool", extra_data.share_link)
  return nil
end

local function store(storage, image, format, filename, number, total, high_quality, extra_data)
  dt.print(string.format(tr("exported %d/%d for Dropbox"), number, total))
end

-- The shell command that hands `files` over and waits for their end.
local function command_for(files, options)
  local words = { sh_quote(dbxportctl), "upload", "--spool", "--wait", "--json", "--original" }
  if options.folder ~= nil and options.folder ~= "" then
    table.insert(words, "--to")
    table.insert(words, sh_quote(options.folder))
  end
  if options.strip_location then
    table.insert(words, "--strip-location")
  end
  if options.conflict ~= nil then
    table.insert(words, "--conflict")
    table.insert(words, sh_quote(options.conflict))
  end
  if options.share_link then
    table.insert(words, "--share-link")
  end
  table.insert(words, "--")
  for _, file in ipairs(files) do
    table.insert(words, sh_quote(file))
  end
  -- stderr too: "queued … as batch N" says the daemon has the files, and an error says why
  -- it does not.
  return table.concat(words, " ") .. " 2>&1"
end

local function remove_all(files)
  for _, file in ipairs(files) do
    os.remove(file)
  end
end

-- A JSON number or string field of the one object `upload --json` prints.
local function json_number(text, key)
  return tonumber(string.match(text, '"' .. key .. '":(%d+)'))
end

local function json_string(text, key)
  return string.match(text, '"' .. key .. '":"(.-)"')
end

-- darktable's exports all sit in its temporary folder, whichever folder (film roll) their
-- photo is in. Each is handed over through a symbolic link <links>/<the roll's folder
-- name>/<file name>, so that dbxportctl tells the daemon that folder: a folder template's
-- {folder} is the roll's, as for the photo itself. Returns the links (the files themselves if
-- they cannot be made) and the folder to remove afterwards.
local function linked_by_roll(image_table)
  local links = os.tmpname()
  os.remove(links)
  -- Not -p: a name someone else took meanwhile in /tmp fails here, and is left alone.
  if not os.execute("mkdir -m 700 " .. sh_quote(links)) then
    return nil, nil
  end
  local script = {}
  local paths = {}
  for image, filename in pairs(image_table) do
    local roll = string.match(image.path or "", "([^/]+)/*$") or "photos"
    local folder = links .. "/" .. roll
    local link = folder .. "/" .. string.match(filename, "[^/]*$")
    table.insert(script, "mkdir -p " .. sh_quote(folder))
    table.insert(script, "ln -s " .. sh_quote(filename) .. " " .. sh_quote(link))
    table.insert(paths, link)
  end
  if not os.execute(table.concat(script, " && ")) then
    os.execute("rm -rf " .. sh_quote(links))
    return nil, nil
  end
  table.sort(paths)
  return paths, links
end

local function finalize(storage, image_table, extra_data)
  local files = {}
  for _, filename in pairs(image_table) do
    table.insert(files, filename)
  end
  table.sort(files)
  if #files == 0 then
    return
  end
  dt.print(string.format(tr("handing %d photos to dbxport…"), #files))
  local handed, links = linked_by_roll(image_table)
  local pipe = io.popen(command_for(handed or files, extra_data), "r")
  local function unlink()
    if links ~= nil then
      os.execute("rm -rf " .. sh_quote(links))
    end
  end
  if pipe == nil then
    unlink()
    dt.print(tr("Dropbox: cannot run dbxportctl; the exported files are kept: ") .. files[1])
    return
  end
  local removed = false
  local result = nil
  local said = {}
  for line in pipe:lines() do
    if string.match(line, "^queued %d+ file%(s%) as batch %d+") then
      -- Spooled: the daemon holds its own copies now.
      remove_all(files)
      removed = true
    elseif string.sub(line, 1, 1) == "{" then
      result = line
    else
      table.insert(said, line)
    end
  end
  local _ok, _how, code = pipe:close()
  unlink()
  if result ~= nil and not removed and string.match(result, '"batch":%d+') then
    remove_all(files)
    removed = true
  end
  if result == nil or not string.match(result, '"batch":%d+') then
    local why = said[#said] or ("dbxportctl exited with " .. tostring(code))
    dt.print(tr("Dropbox: nothing sent: ") .. why .. tr("; the exported files are kept in ") ..
      string.match(files[1], "^(.*)/") )
    return
  end
  local uploaded = json_number(result, "uploaded") or 0
  local skipped = json_number(result, "skipped") or 0
  local failed = json_number(result, "failed") or 0
  local message
  if failed > 0 then
    local first = string.match(result, '"failures":%["(.-)"') or ""
    message = string.format(tr("Dropbox: %d uploaded, %d failed: %s (dbxportctl retry to send them again)"),
      uploaded + skipped, failed, first)
  else
    message = string.format(tr("Dropbox: %d photos uploaded"), uploaded + skipped)
  end
  local link = json_string(result, "link")
  if link ~= nil then
    message = message .. " — " .. link
  end
  dt.print(message)
end

dt.register_storage("dbxport", tr("Dropbox (dbxport)"), store, finalize, supported, initialize, widget)

return {
  -- For lua-scripts' script manager.
  destroy = function()
    dt.destroy_storage("dbxport")
  end,
}
