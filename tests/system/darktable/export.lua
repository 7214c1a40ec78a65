--[[
  Drives an export storage as darktable does after the user clicks "export" (its
  luastorage.c: initialize with the images, then store for each exported file, then
  finalize with the image → file table), with the stand-in darktable module beside this
  file.

  lua5.4 export.lua SCRIPT FOLDER SHARE_LINK FILE…
  FOLDER and SHARE_LINK ("true"/"false") are set in the storage's widget, as a user would,
  before the export; each FILE stands for one exported image.
]]

local here = string.match(arg[0], "^(.*)/") or "."
package.path = here .. "/?.lua;" .. package.path

local dt = require "darktable"
local script, folder, share = arg[1], arg[2], arg[3]
dofile(script)

local storage = assert(dt.storages["dbxport"], "the script registered no dbxport storage")
storage.widget[1].text = folder
storage.widget[4].value = (share == "true")

local format = { extension = "jpg", mime = "image/jpeg", name = "JPEG (8-bit)" }
assert(storage.supported == nil or storage.supported(storage, format), "JPEG not supported")

local images = {}
for i = 4, #arg do
  table.insert(images, { id = i - 3, filename = string.match(arg[i], "[^/]*$"), path = here })
end
local extra_data = {}
local chosen = images
if storage.initialize ~= nil then
  chosen = storage.initialize(storage, format, images, false, extra_data) or images
end
local image_table = {}
for number, image in ipairs(chosen) do
  local filename = arg[3 + image.id]
  image_table[image] = filename
  if storage.store ~= nil then
    storage.store(storage, image, format, filename, number, #chosen, false, extra_data)
  end
end
storage.finalize(storage, image_table, extra_data)
