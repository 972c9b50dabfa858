//! AIP-158 paging, the same for every List RPC: `page_size` 0 means 50, more than 1000 means
//! 1000, negative is refused; the page token is the id of the previous page's last item (ids
//! are UUIDv7, so id order is creation order and a page never repeats or skips an item).

use key_core::Error;
use uuid::Uuid;

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 1000;

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    size: u64,
    /// List the items older than this one.
    pub(crate) after: Option<Uuid>,
}

impl Page {
    pub(crate) fn parse(page_size: i32, page_token: &str) -> Result<Page, Error> {
        let size = match u64::try_from(page_size) {
            Err(_) => {
                return Err(Error::InvalidArgument {
                    field: "page_size",
                    message: "must not be negative".to_owned(),
                });
            }
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
        };
        let after = match page_token {
            "" => None,
            token => Some(Uuid::parse_str(token).map_err(|_| Error::InvalidArgument {
                field: "page_token",
                message: format!("{token:?} is not a page token"),
            })?),
        };
        Ok(Page { size, after })
    }

    /// How many rows to read: one more than the page, to learn whether another page follows.
    pub(crate) fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Drops the extra row, if read, and returns the token of the next page (empty on the
    /// last page).
    pub(crate) fn finish<T>(&self, items: &mut Vec<T>, id: impl Fn(&T) -> Uuid) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if items.len() <= size {
            return String::new();
        }
        items.truncate(size);
        items
            .last()
            .map(|item| id(item).to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded_and_tokens_are_ids() {
        assert_eq!(Page::parse(0, "").unwrap().size, 50);
        assert_eq!(Page::parse(5000, "").unwrap().size, 1000);
        assert!(Page::parse(-1, "").is_err());
        assert!(Page::parse(10, "not-a-token").is_err());
        let page = Page::parse(2, "").unwrap();
        let mut items = vec![Uuid::from_u128(3), Uuid::from_u128(2), Uuid::from_u128(1)];
        assert_eq!(
            page.finish(&mut items, |id| *id),
            Uuid::from_u128(2).to_string()
        );
        assert_eq!(items.len(), 2);
        let mut last = vec![Uuid::from_u128(1)];
        assert_eq!(page.finish(&mut last, |id| *id), "");
    }
}
