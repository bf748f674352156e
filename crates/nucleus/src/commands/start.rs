//! `nucleus start`.

use crate::log::Logger;
use crate::records::{effective, resolve, settled};
use anyhow::{bail, Context, Result};
use nucleus_spec::state::{MonitorReport, Status};
use nucleus_sys::store::{self, Store};

pub(crate) fn start(store: &Store, q: &str, log: &Logger) -> Result<u8> {
    let s = settled(store, resolve(store, q)?);
    if s.oci.is_some() {
        return crate::oci::start(store, &s, log);
    }
    let (st, _) = effective(&s);
    if st != Status::Created {
        bail!(
            "{}: is {}; only a created sandbox can be started",
            q,
            st.as_str()
        );
    }
    let reply = store::request(&store.dir(&s.id).join("ctl"), "start")
        .with_context(|| format!("{q}: its monitor does not answer"))?;
    match MonitorReport::parse(&reply) {
        Some(MonitorReport::Ok) => Ok(0),
        Some(MonitorReport::Error { code, msg }) => {
            log.error(&msg);
            Ok(code)
        }
        _ => bail!("{q}: its monitor answered {reply:?}"),
    }
}
