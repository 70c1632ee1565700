//! Pulling statement feeds: page through each supervised account, drop what
//! was already delivered, hand new feeds to the caller, then move the
//! checkpoint, in that order, so a crash can repeat a page but never skip one.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, instrument, warn};

use crate::client::checkpoint::Checkpoint;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::client::{BankClient, ClientError};
use crate::model::Format;

/// One statement file as the bank delivered it. Parsing happens later
/// (`crate::parse`), so a parser bug never costs us the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedFeed {
    pub bank_id: String,
    pub account: String,
    /// The bank's id for the item: what deduplication is keyed on.
    pub id: String,
    /// As the bank declared it, else the configured format; `None`: detect.
    pub format: Option<Format>,
    pub content: Vec<u8>,
    /// SHA-256 of `content`, hex.
    pub sha256: String,
}

// Statements are never logged whole: Debug shows their size, not their lines.
impl fmt::Debug for FetchedFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedFeed")
            .field("bank_id", &self.bank_id)
            .field("account", &self.account)
            .field("id", &self.id)
            .field("format", &self.format)
            .field("content_len", &self.content.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Receives each page's new feeds before the checkpoint moves past them.
/// A job that must survive a crash stores them here (e.g. in the database);
/// if `accept` fails, the checkpoint stays put and the page comes again.
pub trait FeedSink {
    type Error: std::error::Error + Send + Sync + 'static;
    fn accept(
        &mut self,
        feeds: Vec<FetchedFeed>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl FeedSink for Vec<FetchedFeed> {
    type Error = Infallible;
    fn accept(
        &mut self,
        feeds: Vec<FetchedFeed>,
    ) -> impl Future<Output = Result<(), Infallible>> + Send {
        self.extend(feeds);
        std::future::ready(Ok(()))
    }
}

/// A page on the wire (see the contract in the `client` module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatementPage {
    pub items: Vec<StatementItem>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatementItem {
    pub id: String,
    pub account: String,
    #[serde(default)]
    pub format: Option<String>,
    pub content_base64: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

struct Page {
    feeds: Vec<FetchedFeed>,
    next: Option<String>,
}

const FORMATS: [Format; 6] = [
    Format::Camt052,
    Format::Camt053,
    Format::Camt054,
    Format::Mt940,
    Format::Mt942,
    Format::Csv,
];

pub(crate) fn format_from_code(code: &str) -> Option<Format> {
    FORMATS
        .into_iter()
        .find(|f| f.code().eq_ignore_ascii_case(code))
}

impl BankClient {
    /// Fetches everything new for every configured account and returns it.
    /// On error, feeds of pages already checkpointed are not returned; a
    /// caller that must not lose them uses [`BankClient::fetch_statements_into`].
    pub async fn fetch_statements<C>(
        &self,
        checkpoint: &mut C,
    ) -> Result<Vec<FetchedFeed>, ClientError>
    where
        C: Checkpoint + Send,
    {
        let mut feeds = Vec::new();
        self.fetch_statements_into(checkpoint, &mut feeds).await?;
        Ok(feeds)
    }

    /// Fetches everything new, page by page: new feeds go to `sink`, then
    /// the checkpoint is saved. Returns how many feeds were delivered.
    ///
    /// Delivery is at least once: a crash between `sink.accept` and the
    /// checkpoint save repeats that one page on the next run (ingestion is
    /// idempotent per statement). Otherwise nothing is delivered twice, even
    /// when the bank re-delivers items or serves pages out of order.
    #[instrument(skip_all, fields(bank = %self.config.bank_id))]
    pub async fn fetch_statements_into<C, S>(
        &self,
        checkpoint: &mut C,
        sink: &mut S,
    ) -> Result<usize, ClientError>
    where
        C: Checkpoint + Send,
        S: FeedSink + Send,
    {
        let mut state = checkpoint.load()?;
        match &state.bank_id {
            Some(owner) if owner != self.bank_id() => {
                return Err(ClientError::checkpoint(
                    format!("of bank {owner}"),
                    format!("cannot be used to pull from bank {}", self.bank_id()),
                ))
            }
            _ => state.bank_id = Some(self.bank_id().to_string()),
        }
        let mut delivered: usize = 0;
        for account in &self.config.accounts {
            // A bank that hands back a cursor we already followed in this run
            // would otherwise keep us paging forever.
            let mut followed: HashSet<Option<String>> = HashSet::new();
            loop {
                let mut cursor = state.accounts.get(account).cloned().unwrap_or_default();
                followed.insert(cursor.after.clone());
                let page = self.fetch_page(account, cursor.after.as_deref()).await?;

                let fresh = {
                    let seen = cursor.seen_set();
                    let mut in_page = HashSet::new();
                    let mut fresh = Vec::new();
                    for feed in page.feeds {
                        if seen.contains(feed.id.as_str()) || !in_page.insert(feed.id.clone()) {
                            debug!(account = %account, id = %feed.id, "skipping an item already delivered");
                            continue;
                        }
                        fresh.push(feed);
                    }
                    fresh
                };
                for feed in &fresh {
                    cursor.remember(feed.id.clone());
                }
                // At the end of the feed keep the last page's cursor: the
                // next run re-reads it for items the bank appended since.
                let at_end = page.next.is_none() || followed.contains(&page.next);
                if let Some(next) = &page.next {
                    if followed.contains(&page.next) {
                        warn!(account = %account, "bank returned a cursor already followed in this run; stopping this account");
                    } else {
                        cursor.after = Some(next.clone());
                    }
                }
                let count = fresh.len();
                if !fresh.is_empty() {
                    sink.accept(fresh)
                        .await
                        .map_err(|error| ClientError::Sink {
                            bank: self.bank_id().to_string(),
                            source: Box::new(error),
                        })?;
                }
                state.accounts.insert(account.clone(), cursor);
                checkpoint.save(&state)?;
                delivered = delivered.saturating_add(count);
                if at_end {
                    break;
                }
            }
        }
        Ok(delivered)
    }

    #[instrument(skip_all, fields(bank = %self.config.bank_id, account = %account))]
    async fn fetch_page(&self, account: &str, after: Option<&str>) -> Result<Page, ClientError> {
        let call = self.call(Method::GET, &["v1", "accounts", account, "statements"]);
        let mut query = vec![("limit", self.config.page_size.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.execute(
            &call,
            &query,
            &HeaderMap::new(),
            None,
            |_, bytes| self.decode_page(account, bytes),
            |_| None,
        )
        .await
    }

    /// Any error here is treated as a damaged response and retried.
    fn decode_page(&self, account: &str, bytes: &[u8]) -> Result<Page, String> {
        let page: StatementPage = serde_json::from_slice(bytes)
            .map_err(|error| format!("invalid statement page: {error}"))?;
        let mut feeds = Vec::with_capacity(page.items.len());
        for item in page.items {
            if item.id.is_empty() {
                return Err("statement page has an item without an id".into());
            }
            if item.account != account {
                return Err(format!(
                    "item {} belongs to account {}, not the account asked for",
                    item.id, item.account
                ));
            }
            let content = BASE64
                .decode(&item.content_base64)
                .map_err(|error| format!("item {}: content_base64: {error}", item.id))?;
            let sha256 = hex::encode(Sha256::digest(&content));
            if let Some(declared) = &item.sha256 {
                if !declared.eq_ignore_ascii_case(&sha256) {
                    return Err(format!(
                        "item {}: content does not match its sha256",
                        item.id
                    ));
                }
            }
            let format = match item.format.as_deref() {
                None => self.config.format,
                Some(code) => format_from_code(code).or_else(|| {
                    warn!(id = %item.id, format = %code, "bank declared an unknown format; detecting by content");
                    self.config.format
                }),
            };
            feeds.push(FetchedFeed {
                bank_id: self.bank_id().to_string(),
                account: account.to_string(),
                id: item.id,
                format,
                content,
                sha256,
            });
        }
        Ok(Page {
            feeds,
            next: page.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_code_maps_back_to_its_format() {
        for format in FORMATS {
            assert_eq!(format_from_code(format.code()), Some(format));
        }
        assert_eq!(format_from_code("CAMT053"), Some(Format::Camt053));
        assert_eq!(format_from_code("pdf"), None);
    }

    #[test]
    fn feed_debug_output_does_not_show_the_statement() {
        let feed = FetchedFeed {
            bank_id: "b".into(),
            account: "a".into(),
            id: "i".into(),
            format: None,
            content: b":20:SECRETREF".to_vec(),
            sha256: String::new(),
        };
        assert!(!format!("{feed:?}").contains("SECRETREF"));
    }
}
