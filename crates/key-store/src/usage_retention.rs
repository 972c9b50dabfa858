//! Retention: usage rows older than their resolution's retention are deleted, in bounded
//! batches, so pruning a large backlog never holds a long transaction.

use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, Query},
};

use crate::{
    Error, Resolution, Store,
    entity::usage_bucket::{Column, Entity as UsageBuckets},
};

impl Store {
    /// Deletes at most `limit` rows of `resolution` whose bucket starts before `before`
    /// (seconds since the Unix epoch), and returns how many it deleted. Fewer than `limit`
    /// means nothing older is left.
    pub async fn prune_usage(
        &self,
        resolution: Resolution,
        before: i64,
        limit: u64,
    ) -> Result<u64, Error> {
        // A DELETE with a LIMIT is not portable; a row-value IN over a limited SELECT is, and
        // uses the (resolution, bucket_start) index.
        let batch = Query::select()
            .columns([
                Column::KeyId,
                Column::Resolution,
                Column::BucketStart,
                Column::Dimension,
                Column::Value,
            ])
            .from(UsageBuckets)
            .and_where(Expr::col(Column::Resolution).eq(resolution.as_str()))
            .and_where(Expr::col(Column::BucketStart).lt(before))
            .limit(limit)
            .to_owned();
        let deleted = UsageBuckets::delete_many()
            .filter(Column::Resolution.eq(resolution.as_str()))
            .filter(
                Expr::tuple([
                    Expr::col(Column::KeyId),
                    Expr::col(Column::Resolution),
                    Expr::col(Column::BucketStart),
                    Expr::col(Column::Dimension),
                    Expr::col(Column::Value),
                ])
                .in_subquery(batch),
            )
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}
