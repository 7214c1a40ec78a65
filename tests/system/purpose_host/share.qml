// KDE's own Share menu, without a window: Purpose's model of the Export plugins for the
// photos in URLS (replaced by the test), the dbxport plugin picked from it, configured and
// run as Dolphin's and Gwenview's Share menus run it. Prints each plugin offered, then one
// RESULT line with the job's error and output, and quits with 0 (done), 1 (failed) or 2 (the
// plugin was not offered).
import QtQuick 2.15
import org.kde.purpose 1.0 as Purpose

Item {
    Purpose.PurposeAlternativesModel {
        id: model
        pluginType: "Export"
        inputData: { "urls": URLS, "mimeType": "image/jpeg" }
    }
    Component.onCompleted: {
        var row = -1
        for (var i = 0; i < model.rowCount(); i++) {
            // Qt.UserRole + 1: AlternativesModel's PluginIdRole.
            var id = model.data(model.index(i, 0), Qt.UserRole + 1)
            console.log("OFFERED " + id + " " + model.data(model.index(i, 0), Qt.DisplayRole))
            if (id === "io.github.dbxport1")
                row = i
        }
        // Qt.exit is heard only once the event loop runs, after this handler.
        if (row < 0) {
            console.log("RESULT " + JSON.stringify({ error: -1, text: "not offered" }))
            Qt.callLater(Qt.exit, 2)
            return
        }
        var job = model.configureJob(row).createJob()
        job.result.connect(function() {
            console.log("RESULT " + JSON.stringify({ error: job.error, text: job.errorString, output: job.output || {} }))
            Qt.callLater(Qt.exit, job.error ? 1 : 0)
        })
        job.start()
    }
}
