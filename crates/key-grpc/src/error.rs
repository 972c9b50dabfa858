/// What starting or running the gRPC server can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reflection service could not read the embedded descriptors (a build problem).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The listener's address cannot be read.
    #[error("cannot read the listener's address: {0}")]
    Io(#[from] std::io::Error),
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
