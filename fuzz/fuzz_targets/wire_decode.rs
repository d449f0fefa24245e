//! Fuzzes the model-driven request decoders of `citadel_wire::codec`.
//!
//! Input: the first byte picks the decoder and the model; the rest is split as follows.
//! - query (`iam`, `sts`, `monitoring`): the rest is a form body, split on `&` and `=` without percent-decoding,
//!   since the decoder receives already decoded pairs.
//! - json (`kms`, `logs`, `cloudtrail`): the first line is the `X-Amz-Target` value, the rest the body.
//! - rest-json (a small GuardDuty-like model, because no embedded service uses the protocol yet): lines are
//!   method, path, query, then `name: value` headers until an empty line, then the body.

#![no_main]

use std::sync::OnceLock;

use citadel_wire::codec::{RequestParts, ServiceModel, decode_json, decode_query, decode_rest_json, model};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const REST_MODEL: &str = include_str!("rest_model.json");

fn rest_model() -> Option<&'static ServiceModel> {
    static MODEL: OnceLock<Option<ServiceModel>> = OnceLock::new();
    MODEL.get_or_init(|| ServiceModel::from_json(REST_MODEL).ok()).as_ref()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 7 {
        mode @ 0..=2 => {
            let service = ["iam", "sts", "monitoring"][usize::from(mode)];
            let Some(model) = model(service) else {
                return;
            };
            let params: Vec<(String, String)> = rest
                .split(|&b| b == b'&')
                .map(|pair| match pair.iter().position(|&b| b == b'=') {
                    Some(eq) => (lossy(&pair[..eq]), lossy(&pair[eq + 1..])),
                    None => (lossy(pair), String::new()),
                })
                .collect();
            let _ = decode_query(model, &params);
        }
        mode @ 3..=5 => {
            let service = ["kms", "logs", "cloudtrail"][usize::from(mode - 3)];
            let Some(model) = model(service) else {
                return;
            };
            let (target, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => (&rest[..newline], &rest[newline + 1..]),
                None => (rest, &[][..]),
            };
            let target = std::str::from_utf8(target).ok();
            let _ = decode_json(model, target, body);
        }
        _ => {
            let Some(model) = rest_model() else {
                return;
            };
            let mut lines = rest.split(|&b| b == b'\n');
            let method = lossy(lines.next().unwrap_or_default());
            let path = lossy(lines.next().unwrap_or_default());
            let query = lossy(lines.next().unwrap_or_default());
            let mut headers = HeaderMap::new();
            let mut body = Vec::new();
            let mut in_body = false;
            for line in lines {
                if in_body {
                    if !body.is_empty() {
                        body.push(b'\n');
                    }
                    body.extend_from_slice(line);
                    continue;
                }
                if line.is_empty() {
                    in_body = true;
                    continue;
                }
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
                    if let (Ok(name), Ok(value)) =
                        (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value))
                    {
                        headers.append(name, value);
                    }
                }
            }
            let request = RequestParts {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let _ = decode_rest_json(model, &request);
        }
    }
});
