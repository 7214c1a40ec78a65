//! The daemon's three interfaces the dialog uses, on the session bus. The first call starts
//! dbxportd through D-Bus activation when it is not running, as `dbxportctl`'s does.

use dbxport::service::{AccountProxy, FoldersProxy, UploaderProxy};
use zbus::proxy::CacheProperties;

use crate::model::errors::{Trouble, zbus_trouble};

/// The proxies, cheap to clone into each task.
#[derive(Clone)]
pub struct Bus {
    pub uploader: UploaderProxy<'static>,
    pub account: AccountProxy<'static>,
    pub folders: FoldersProxy<'static>,
    pub properties: zbus::fdo::PropertiesProxy<'static>,
}

impl Bus {
    /// Connects to the session bus. Properties are read when wanted, never cached: a cache
    /// filled before the daemon was activated would hold nothing.
    pub async fn connect() -> Result<Bus, Trouble> {
        let conn = zbus::Connection::session()
            .await
            .map_err(|e| zbus_trouble(&e))?;
        let uploader = UploaderProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| zbus_trouble(&e))?;
        let account = AccountProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| zbus_trouble(&e))?;
        let folders = FoldersProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| zbus_trouble(&e))?;
        let properties = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination(dbxport::service::BUS_NAME)
            .map_err(|e| zbus_trouble(&e))?
            .path(dbxport::service::OBJECT_PATH)
            .map_err(|e| zbus_trouble(&e))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| zbus_trouble(&e))?;
        Ok(Bus {
            uploader,
            account,
            folders,
            properties,
        })
    }
}
