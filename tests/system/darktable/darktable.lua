--[[
  A stand-in for darktable's Lua API (the `darktable` module a script `require`s), written
  from darktable's Lua API documentation, with just what an export storage uses:
  new_widget, register_storage / destroy_storage, preferences.read / write, print,
  print_error, print_log and configuration. It keeps what the script registered and printed
  so that export.lua can drive the storage as darktable does.
]]

local M = {
  configuration = { api_version_major = 9, api_version_minor = 0, running_os = "linux",
                    tmp_dir = os.getenv("TMPDIR") or "/tmp" },
  preferences = {},
  storages = {},
  printed = {},
}

local prefs = {}

-- darktable.preferences.read(script, name, type): an unset string is "", bool false,
-- integer and float 0.
function M.preferences.read(script, name, kind)
  local value = prefs[script .. "/" .. name]
  if value ~= nil then
    return value
  end
  if kind == "bool" then
    return false
  elseif kind == "integer" or kind == "float" then
    return 0
  end
  return ""
end

function M.preferences.write(script, name, kind, value)
  prefs[script .. "/" .. name] = value
end

function M.preferences.register() end

-- darktable.new_widget(type) returns a constructor taking the widget's attributes; a
-- combobox's entries are its positional values and `value` is the selected one's text.
function M.new_widget(kind)
  return function(attributes)
    local widget = { __kind = kind }
    for key, value in pairs(attributes) do
      widget[key] = value
    end
    if kind == "combobox" then
      widget.selected = widget.selected or 1
      widget.value = widget[widget.selected]
    end
    return widget
  end
end

function M.register_storage(plugin_name, name, store, finalize, supported, initialize, widget)
  assert(type(plugin_name) == "string" and type(name) == "string")
  M.storages[plugin_name] = {
    plugin_name = plugin_name, name = name, store = store, finalize = finalize,
    supported = supported, initialize = initialize, widget = widget,
  }
end

function M.destroy_storage(plugin_name)
  M.storages[plugin_name] = nil
end

function M.print(message)
  table.insert(M.printed, message)
  io.stdout:write("dt.print: ", message, "\n")
  io.stdout:flush()
end

function M.print_error(message)
  M.print(message)
end

function M.print_log(message) end

return M
