//! Reading a policy file past its unknown keys. The YAML parser stops at
//! the first key the format does not have (`colour:`), which would hide
//! every other mistake in the file. Instead, each unknown key is reported,
//! and the key with its value is blanked out of the text (spaces in place
//! of characters, line breaks kept, so every other position stays exact),
//! and the file is read again. Other shape errors (a list where a map
//! belongs, bad YAML) still end the file: there is no safe way to read on.

use std::path::Path;

use super::PolicyError;
use super::file::PolicyFile;

/// Unknown keys reported in one file at most, before giving up on it.
const MOST_REPAIRS: usize = 100;

/// Parses `text`: the file (if what remains after its unknown keys parses)
/// and every shape error found on the way, in file order.
pub fn parse(path: &Path, text: &str) -> (Option<PolicyFile>, Vec<PolicyError>) {
    if text.trim().is_empty() {
        return (Some(PolicyFile::default()), Vec::new());
    }
    let mut text = text.to_owned();
    let mut errors = Vec::new();
    for _ in 0..MOST_REPAIRS {
        let error = match serde_saphyr::from_str::<PolicyFile>(&text) {
            Ok(file) => return (Some(file), errors),
            Err(error) => error,
        };
        let (line, column) = error
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((0, 0));
        let message = error.without_snippet().to_string();
        // The parser repeats the position we already put in front.
        let suffix = format!(" at line {line}, column {column}");
        let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
        let unknown_key = message.starts_with("unknown field");
        errors.push(PolicyError::Syntax {
            file: path.to_owned(),
            line,
            column,
            message,
        });
        let repaired = unknown_key
            .then(|| without_key_at(&text, line, column))
            .flatten();
        match repaired {
            Some(repaired) if repaired != text => text = repaired,
            _ => return (None, errors),
        }
    }
    (None, errors)
}

/// `text` with the mapping key at `line`:`column` (1-based) and its value
/// replaced by spaces: in a flow mapping (`{ a: 1, colour: red }`) up to
/// the next `,` or `}` at its depth, with one separating comma; in a block
/// mapping, the rest of its line and every following line indented deeper
/// than the key. `None` when nothing there looks like a key.
fn without_key_at(text: &str, line: u32, column: u32) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let row = usize::try_from(line).ok()?.checked_sub(1)?;
    let start = usize::try_from(column).ok()?.checked_sub(1)?;
    let chars: Vec<char> = lines.get(row)?.chars().collect();
    if start >= chars.len() || chars[start].is_whitespace() {
        return None;
    }
    let in_flow = depth_before(&chars[..start]) > 0;
    let mut blanked = chars.clone();
    if in_flow {
        let end = flow_value_end(&chars, start);
        for c in &mut blanked[start..end] {
            *c = ' ';
        }
        if chars.get(end) == Some(&',') {
            blanked[end] = ' ';
        } else if let Some(comma) = chars[..start].iter().rposition(|c| !c.is_whitespace())
            && chars[comma] == ','
        {
            blanked[comma] = ' ';
        }
        lines[row] = blanked.into_iter().collect();
        return Some(lines.join("\n"));
    }
    for c in &mut blanked[start..] {
        *c = ' ';
    }
    lines[row] = blanked.into_iter().collect();
    // Its block value: the following lines indented deeper than the key.
    for next in lines.iter_mut().skip(row + 1) {
        let indent = next.chars().take_while(|c| *c == ' ').count();
        let blank = next.trim().is_empty();
        if !blank && indent <= start {
            break;
        }
        *next = " ".repeat(next.chars().count());
    }
    Some(lines.join("\n"))
}

/// How many flow collections (`{`, `[`) are open before this point of a
/// line, outside quotes.
fn depth_before(chars: &[char]) -> usize {
    let mut depth: usize = 0;
    let mut quote = None;
    for c in chars {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

/// Where the flow entry starting at `start` ends: the `,` or closing
/// bracket at its own depth, or the end of the line.
fn flow_value_end(chars: &[char], start: usize) -> usize {
    let mut depth: usize = 0;
    let mut quote = None;
    for (at, c) in chars.iter().enumerate().skip(start) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') if depth == 0 => return at,
            (None, '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => return at,
            _ => {}
        }
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_key_goes_with_its_value_and_positions_stay() {
        let text = "a:\n  colour:\n    - red\n    - blue\n  b: 1\nc: 2\n";
        let blanked = without_key_at(text, 2, 3).unwrap();
        assert_eq!(
            blanked,
            "a:\n         \n         \n          \n  b: 1\nc: 2\n"
        );
        assert_eq!(blanked.lines().count(), text.lines().count());
    }

    #[test]
    fn a_flow_key_goes_with_its_value_and_one_comma() {
        let text = "x: { a: 1, colour: [red, blue], b: \"}\" }";
        let blanked = without_key_at(text, 1, 12).unwrap();
        assert_eq!(
            blanked,
            text.replace("colour: [red, blue],", &" ".repeat(20))
        );
        let last = "x: { a: 1, colour: red }";
        assert_eq!(
            without_key_at(last, 1, 12).unwrap(),
            last.replace(", colour: red", &" ".repeat(13))
        );
    }

    #[test]
    fn every_unknown_key_is_reported_and_the_rest_is_read() {
        let text = concat!(
            "channels:\n",
            "  alerts: { slack_channel: \"#alerts\", colour: red }\n",
            "policies:\n",
            "  - name: critical\n",
            "    match: { labels_any: [\"p1\"] }\n",
            "    clock: { target: 24h }\n",
            "    escalation:\n",
            "      - on: start\n",
            "        slack: { channel: alerts }\n",
            "    owner:\n",
            "      team: sre\n",
        );
        let (file, errors) = parse(Path::new("p.yml"), text);
        let positions: Vec<(u32, u32)> = errors
            .iter()
            .map(|e| match e {
                PolicyError::Syntax { line, column, .. } => (*line, *column),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(positions, [(2, 39), (10, 5)]);
        assert!(errors[0].to_string().contains("unknown field `colour`"));
        let file = file.expect("the rest is read");
        assert_eq!(file.policies.len(), 1);
        assert_eq!(file.channels.len(), 1);
    }

    #[test]
    fn other_shape_errors_still_end_the_file() {
        let (file, errors) = parse(Path::new("p.yml"), "policies: { name: x }\n");
        assert!(file.is_none());
        assert_eq!(errors.len(), 1);
    }
}
