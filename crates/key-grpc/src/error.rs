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
}
