//! Verifying a chunk of keys with several workers at once, in process or over gRPC.

use std::future::Future;

use tokio::task::JoinSet;

/// Deals `chunk` out to `concurrency` workers (worker `n` takes every `concurrency`-th key from
/// the `n`-th) and runs them at once: `verify_share(worker, share)` verifies one share and
/// answers how many of its keys were not valid. Returns how many keys were verified, and how
/// many of them were not valid.
pub(crate) async fn verify_in_shares<F, Fut>(
    chunk: Vec<String>,
    concurrency: usize,
    mut verify_share: F,
) -> anyhow::Result<(u64, u64)>
where
    F: FnMut(usize, Vec<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let mut shares: Vec<Vec<String>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (index, key) in chunk.into_iter().enumerate() {
        shares[index % concurrency].push(key);
    }
    let mut workers = JoinSet::new();
    for (worker, share) in shares.into_iter().enumerate() {
        let count = share.len() as u64;
        let not_valid = verify_share(worker, share);
        workers.spawn(async move { anyhow::Ok((count, not_valid.await?)) });
    }
    let (mut verified, mut not_valid) = (0, 0);
    while let Some(done) = workers.join_next().await {
        let (share_verified, share_not_valid) = done??;
        verified += share_verified;
        not_valid += share_not_valid;
    }
    Ok((verified, not_valid))
}
