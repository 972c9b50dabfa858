//! The optional country database: a MaxMind DB file (GeoIP2/GeoLite2 Country or City, or any
//! database with `country.iso_code`), read into memory once at start and looked up only when
//! a verification of a known key brings a client address and no country.

use std::{fmt, net::IpAddr, path::Path, sync::Arc};

use maxminddb::{PathElement, Reader};

use super::context::Country;
use crate::SetupError;

/// A country database, loaded once. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct CountryDb {
    reader: Arc<Reader<Vec<u8>>>,
}

impl fmt::Debug for CountryDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountryDb")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

/// Where the country code sits in GeoIP2 records.
const ISO_CODE: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];

impl CountryDb {
    /// Reads the database at `path` and checks its metadata.
    pub fn open(path: &Path) -> Result<CountryDb, SetupError> {
        let reader = Reader::open_readfile(path).map_err(|source| SetupError::CountryDb {
            path: path.display().to_string(),
            source,
        })?;
        Ok(CountryDb {
            reader: Arc::new(reader),
        })
    }

    /// The country of `ip`, if the database knows it. A lookup error (a corrupt record) is
    /// logged and treated as unknown: the country is only ever a statistic.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let found = self
            .reader
            .lookup(ip)
            .and_then(|result| result.decode_path::<&str>(&ISO_CODE));
        match found {
            Ok(code) => code.and_then(Country::parse),
            Err(error) => {
                tracing::debug!(%error, "country lookup failed");
                None
            }
        }
    }
}
