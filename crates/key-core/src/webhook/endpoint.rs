//! Webhook endpoints: the rules an endpoint's URL and description must meet.

use crate::Error;

/// The longest endpoint URL accepted, in characters.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;
/// The longest endpoint description accepted, in characters.
pub const MAX_WEBHOOK_DESCRIPTION_CHARS: usize = 200;

/// A validated endpoint URL: `https` (or `http` where the server allows it, for local
/// development and tests), with a host, without credentials, at most
/// [`MAX_WEBHOOK_URL_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Checks `text`; `allow_http` admits plain `http` URLs.
    pub fn parse(text: &str, allow_http: bool) -> Result<WebhookUrl, Error> {
        let invalid = |message: &str| Error::InvalidArgument {
            field: "url",
            message: message.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("required"));
        }
        if text.chars().count() > MAX_WEBHOOK_URL_CHARS {
            return Err(invalid(&format!(
                "at most {MAX_WEBHOOK_URL_CHARS} characters"
            )));
        }
        let url = url::Url::parse(text).map_err(|_| invalid("not an absolute URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(invalid("must use https")),
            _ => return Err(invalid("must be an https URL")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain credentials"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not contain a fragment"));
        }
        Ok(WebhookUrl(url.into()))
    }

    /// The URL, normalized.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks an endpoint description: at most [`MAX_WEBHOOK_DESCRIPTION_CHARS`] characters,
/// without control characters.
pub fn parse_webhook_description(text: &str) -> Result<String, Error> {
    if text.chars().count() > MAX_WEBHOOK_DESCRIPTION_CHARS {
        return Err(Error::InvalidArgument {
            field: "description",
            message: format!("at most {MAX_WEBHOOK_DESCRIPTION_CHARS} characters"),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            field: "description",
            message: "must not contain control characters".to_owned(),
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_without_credentials() {
        assert!(WebhookUrl::parse("https://example.com/hooks", false).is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hooks", false).is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hooks", true).is_ok());
        assert!(WebhookUrl::parse("ftp://example.com/", true).is_err());
        assert!(WebhookUrl::parse("https://user:pass@example.com/", false).is_err());
        assert!(WebhookUrl::parse("example.com/hooks", false).is_err());
        assert!(WebhookUrl::parse("", false).is_err());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(WebhookUrl::parse(&long, false).is_err());
    }

    #[test]
    fn descriptions_are_short_and_printable() {
        assert!(parse_webhook_description(&"a".repeat(200)).is_ok());
        assert!(parse_webhook_description(&"a".repeat(201)).is_err());
        assert!(parse_webhook_description("line\nbreak").is_err());
    }
}
