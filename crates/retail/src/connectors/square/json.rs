//! Reading Square's JSON answers: every missing or mistyped field is a
//! [`SquareError::Malformed`] naming the endpoint and the field's path
//! (`orders[3].line_items[0].base_price_money.amount`), never a panic.

use serde_json::Value as Json;

use super::client::SquareError;

/// A value and its path, for errors.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    endpoint: &'a str,
    path: String,
    value: &'a Json,
}

impl<'a> Node<'a> {
    /// The root of an answer.
    pub fn root(endpoint: &'a str, value: &'a Json) -> Self {
        Node {
            endpoint,
            path: String::new(),
            value,
        }
    }

    pub fn value(&self) -> &'a Json {
        self.value
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An error about `key` of this value.
    pub fn malformed(&self, key: &str, reason: impl Into<String>) -> SquareError {
        SquareError::Malformed {
            endpoint: self.endpoint.into(),
            field: if key.is_empty() {
                self.path.clone()
            } else {
                self.child_path(key)
            },
            reason: reason.into(),
        }
    }

    fn object(&self) -> Result<&'a serde_json::Map<String, Json>, SquareError> {
        self.value
            .as_object()
            .ok_or_else(|| self.malformed("", format!("is not an object ({})", kind(self.value))))
    }

    /// `key`, absent or null as `None`.
    pub fn opt(&self, key: &str) -> Result<Option<Node<'a>>, SquareError> {
        Ok(self
            .object()?
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                endpoint: self.endpoint,
                path: self.child_path(key),
                value,
            }))
    }

    pub fn req(&self, key: &str) -> Result<Node<'a>, SquareError> {
        self.opt(key)?
            .ok_or_else(|| self.malformed(key, "is missing"))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, SquareError> {
        match self.opt(key)? {
            None => Ok(None),
            Some(n) => {
                n.value.as_str().map(Some).ok_or_else(|| {
                    self.malformed(key, format!("is not a string ({})", kind(n.value)))
                })
            }
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str, SquareError> {
        self.opt_str(key)?
            .ok_or_else(|| self.malformed(key, "is missing"))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, SquareError> {
        match self.opt(key)? {
            None => Ok(None),
            Some(n) => n.value.as_bool().map(Some).ok_or_else(|| {
                self.malformed(key, format!("is not true or false ({})", kind(n.value)))
            }),
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64, SquareError> {
        let n = self.req(key)?;
        n.value
            .as_i64()
            .ok_or_else(|| self.malformed(key, format!("is not an integer ({})", kind(n.value))))
    }

    /// The elements of array `key`; absent or null is empty.
    pub fn list(&self, key: &str) -> Result<Vec<Node<'a>>, SquareError> {
        let Some(n) = self.opt(key)? else {
            return Ok(Vec::new());
        };
        let items = n
            .value
            .as_array()
            .ok_or_else(|| self.malformed(key, format!("is not an array ({})", kind(n.value))))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                endpoint: self.endpoint,
                path: format!("{}[{i}]", n.path),
                value,
            })
            .collect())
    }

    /// The next-page cursor: absent, null or empty is the last page.
    pub fn cursor(&self) -> Result<Option<String>, SquareError> {
        Ok(self
            .opt_str("cursor")?
            .filter(|c| !c.is_empty())
            .map(str::to_string))
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
