/// What preparing the application's parts can fail with, before anything is served.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The Redis rate limiter cannot be set up (a malformed URL; an unreachable Redis is not
    /// an error, the limiter falls back to local limits).
    #[error("cannot use Redis for rate limits: {0}")]
    Redis(#[from] redis::RedisError),
    /// The country database could not be read.
    #[error("cannot read the country database {path}: {source}")]
    CountryDb {
        /// The file.
        path: String,
        /// What went wrong.
        source: maxminddb::MaxMindDbError,
    },
}
