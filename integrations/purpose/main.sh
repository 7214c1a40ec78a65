#!/bin/sh
# KDE Share menu (Purpose) plugin: Purpose runs contents/code/main.* of the kpackage with
# --server SOCKET --pluginType Export --pluginPath PATH; dbxportctl reads the shared photos
# from that socket and answers there. Installed by `dbxportctl install` to
# ~/.local/share/kpackage/Purpose/io.github.dbxport1/contents/code/main.sh, executable, with
# the line below pointing at the installed dbxportctl.
dbxportctl=dbxportctl
exec "$dbxportctl" purpose "$@"
