//! Slack's documented limits on a message, as `chat.postMessage`,
//! `chat.update` and incoming webhooks enforce them: at most 50 blocks;
//! a section's text at most 3 000 characters and each of its fields at
//! most 2 000; a header's text at most 150; a context at most 10
//! elements; and the message's `text` at most 40 000 characters. A
//! message over a block limit is refused with `invalid_blocks`, one over
//! the text limit with `msg_too_long`.

use serde_json::Value;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3_000;
pub const MAX_SECTION_FIELD: usize = 2_000;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const MAX_TEXT: usize = 40_000;

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |text| text.chars().count())
}

/// Slack's error for a message over its limits, if it is.
pub fn over_limits(body: &Value) -> Option<&'static str> {
    if chars(&body["text"]) > MAX_TEXT {
        return Some("msg_too_long");
    }
    let blocks = body["blocks"].as_array()?;
    if blocks.len() > MAX_BLOCKS {
        return Some("invalid_blocks");
    }
    let over = blocks.iter().any(|block| match block["type"].as_str() {
        Some("section") => {
            chars(&block["text"]["text"]) > MAX_SECTION_TEXT
                || block["fields"].as_array().is_some_and(|fields| {
                    fields.iter().any(|f| chars(&f["text"]) > MAX_SECTION_FIELD)
                })
        }
        Some("header") => chars(&block["text"]["text"]) > MAX_HEADER_TEXT,
        Some("context") => block["elements"]
            .as_array()
            .is_some_and(|elements| elements.len() > MAX_CONTEXT_ELEMENTS),
        _ => false,
    });
    over.then_some("invalid_blocks")
}
