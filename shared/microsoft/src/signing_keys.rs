//! ConnectWise PSA's callback signing keys over HTTP: `GET {Metadata.key_url}` answers `{"signing_key": "..."}`.
//! Keys are kept per URL for the life of the process (a function instance), so a burst of callbacks costs one fetch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::ports::signing_keys::SigningKeys;

/// Fetches and caches signing keys.
pub struct HttpSigningKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, String>>,
}

impl HttpSigningKeys {
    /// A fetcher using `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl SigningKeys for HttpSigningKeys {
    async fn signing_key(&self, url: &str) -> Result<String, String> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
        {
            return Ok(k.clone());
        }
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("GET key_url: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("GET key_url: HTTP {}", response.status().as_u16()));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| "key_url did not answer JSON".to_string())?;
        let key = body
            .get("signing_key")
            .and_then(serde_json::Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or("key_url's answer has no 'signing_key'")?
            .to_string();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url.to_string(), key.clone());
        Ok(key)
    }
}
