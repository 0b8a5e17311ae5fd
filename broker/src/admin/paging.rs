//! Paging of the list calls: `page_size` (0 = [`DEFAULT_PAGE_SIZE`], capped at
//! [`MAX_PAGE_SIZE`]) and opaque page tokens.
//!
//! A token is the hex form of the sort key of the last item of the previous page; the next page
//! starts after that key. So pages are not a snapshot (as the contract says): items added or
//! removed between calls may be missed or not, but no item is listed twice.

use tonic::Status;

/// Items per page when the request says 0.
pub(super) const DEFAULT_PAGE_SIZE: usize = 100;
/// Most items per page.
pub(super) const MAX_PAGE_SIZE: usize = 1000;

/// Separates the parts of a compound sort key (client id, then filter). MQTT strings never
/// contain U+0000 ([MQTT-1.5.3-2]), so it cannot occur inside a part.
pub(super) const KEY_SEPARATOR: char = '\0';

/// Where a page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageRequest {
    size: usize,
    after: Option<String>,
}

impl PageRequest {
    /// Reads `page_size` and `page_token`.
    pub(super) fn new(page_size: u32, page_token: &str) -> Result<Self, Status> {
        let size = match usize::try_from(page_size).unwrap_or(MAX_PAGE_SIZE) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode_token(page_token).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "malformed page_token `{page_token}`: pass the `next_page_token` of the \
                     previous response, or nothing for the first page"
                ))
            })?)
        };
        Ok(Self { size, after })
    }

    /// One page of `items` (sorted by `key`, ascending, keys unique) and the token of the next
    /// page, empty on the last one.
    pub(super) fn page<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        let mut page: Vec<T> = items
            .into_iter()
            .filter(|item| self.after.as_ref().is_none_or(|after| key(item) > *after))
            .take(self.size + 1)
            .collect();
        let next = if page.len() > self.size {
            page.truncate(self.size);
            page.last()
                .map(|last| encode_token(&key(last)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        (page, next)
    }
}

fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if token.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:03}")).collect()
    }

    #[test]
    fn pages_walk_the_whole_list_once() {
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let request = PageRequest::new(7, &token).expect("valid");
            let (page, next) = request.page(keys(30), String::clone);
            assert!(page.len() <= 7);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, keys(30));
    }

    #[test]
    fn sizes_default_and_cap() {
        let (page, next) = PageRequest::new(0, "")
            .expect("valid")
            .page(keys(150), String::clone);
        assert_eq!((page.len(), next.is_empty()), (DEFAULT_PAGE_SIZE, false));
        let (page, next) = PageRequest::new(u32::MAX, "")
            .expect("valid")
            .page(keys(1200), String::clone);
        assert_eq!((page.len(), next.is_empty()), (MAX_PAGE_SIZE, false));
        let (page, next) = PageRequest::new(5, "")
            .expect("valid")
            .page(keys(5), String::clone);
        assert_eq!(
            (page.len(), next.as_str()),
            (5, ""),
            "exactly one page: no next"
        );
    }

    #[test]
    fn tokens_round_trip_any_key_and_refuse_garbage() {
        for key in ["", "a/b", "client\0sensors/+/temp", "é€"] {
            assert_eq!(decode_token(&encode_token(key)).as_deref(), Some(key));
        }
        for bad in ["xyz", "abc", "zz", "ff"] {
            let err = PageRequest::new(1, bad).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
