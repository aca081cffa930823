//! Query strings read by hand, so a repeated key (`status=a&status=b`) keeps every value and
//! every bad value gets a 400 that names it.

use percent_encoding::percent_decode_str;

use crate::ApiError;

/// The decoded `key=value` pairs of a query string, in order.
pub(crate) fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| ApiError::bad_request("the query string is not valid UTF-8"))
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Rejects keys the endpoint does not know (a typo must not silently list everything).
pub(crate) fn only(pairs: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{k}` (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The last value of `key`.
pub(crate) fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `key` as a number in `min..=max`, or `default`.
pub(crate) fn number(
    pairs: &[(String, String)],
    key: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match last(pairs, key) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{key}` must be a whole number from {min} to {max}, got `{text}`"
                ))
            }),
    }
}
