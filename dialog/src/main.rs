//! `dbxport-export`: the export dialog's entry point. Everything it does lives in the library
//! (`dbxport_export`): the model without a display, and the window that renders it.

fn main() -> std::process::ExitCode {
    dbxport_export::run()
}
