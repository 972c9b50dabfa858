//! AIP-158 paging, the same for every List RPC: `page_size` 0 means 50, more than 1000 means
//! 1000, negative is refused; the page token is the id of the previous page's last item (ids
//! are UUIDv7, so id order is creation order and a page never repeats or skips an item).

use key_core::Error;
use uuid::Uuid;

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 1000;

/// A page as a List request asks for it, not yet validated: each operation validates it after
/// its permission check, so a caller that may not list learns nothing from a malformed token.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// How many items; 0 means 50.
    pub page_size: i32,
    /// The previous page's `next_page_token`, or empty for the first page.
    pub page_token: String,
}

/// One page of items and the token of the next (empty on the last page).
#[derive(Debug, Clone)]
pub struct Listed<T> {
    /// The items, newest first (oldest first for webhook endpoints).
    pub items: Vec<T>,
    /// The token of the next page; empty on the last.
    pub next_page_token: String,
}

impl<T> Listed<T> {
    /// The same page with each item changed by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listed<U> {
        Listed {
            items: self.items.into_iter().map(f).collect(),
            next_page_token: self.next_page_token,
        }
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    size: u64,
    /// List the items older than this one.
    pub(crate) after: Option<Uuid>,
}

impl Page {
    pub(crate) fn parse(request: &PageRequest) -> Result<Page, Error> {
        let (page_size, page_token) = (request.page_size, request.page_token.as_str());
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

    /// Drops the extra row, if read, and pairs the page with the token of the next page
    /// (empty on the last page).
    pub(crate) fn finish<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> Uuid) -> Listed<T> {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if items.len() <= size {
            return Listed {
                items,
                next_page_token: String::new(),
            };
        }
        items.truncate(size);
        let next_page_token = items
            .last()
            .map(|item| id(item).to_string())
            .unwrap_or_default();
        Listed {
            items,
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page_size: i32, page_token: &str) -> Result<Page, Error> {
        Page::parse(&PageRequest {
            page_size,
            page_token: page_token.to_owned(),
        })
    }

    #[test]
    fn sizes_are_bounded_and_tokens_are_ids() {
        assert_eq!(page(0, "").unwrap().size, 50);
        assert_eq!(page(5000, "").unwrap().size, 1000);
        assert!(page(-1, "").is_err());
        assert!(page(10, "not-a-token").is_err());
        let two = page(2, "").unwrap();
        let items = vec![Uuid::from_u128(3), Uuid::from_u128(2), Uuid::from_u128(1)];
        let listed = two.finish(items, |id| *id);
        assert_eq!(listed.next_page_token, Uuid::from_u128(2).to_string());
        assert_eq!(listed.items.len(), 2);
        let last = two.finish(vec![Uuid::from_u128(1)], |id| *id);
        assert_eq!(last.next_page_token, "");
    }
}
