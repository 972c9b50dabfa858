use crate::Error;

/// Where key material comes from. Production passes `ring::rand::SystemRandom`; tests may
/// pass a source that replays fixed bytes.
pub trait RandomSource: Send + Sync + std::fmt::Debug {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error>;
}

impl RandomSource for ring::rand::SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        ring::rand::SecureRandom::fill(self, dest)
            .map_err(|_| Error::Internal("the system random number generator failed".to_owned()))
    }
}
