//! Reading a policy file past its shape errors. The YAML parser stops at
//! the first thing the format does not have (an unknown key `colour:`, a
//! single value where a list belongs, a step without its `on:`), which
//! would hide every other mistake in the file. Instead, each such error is
//! reported, the part it is about is blanked out of the text (spaces in
//! place of characters, line breaks kept, so every other position stays
//! exact), and the file is read again:
//!
//! - an unknown key, or a key written twice in one map, goes with its value;
//! - a value of the wrong shape goes with its key (or its list item), and
//!   the "missing field" that leaves behind is not reported twice;
//! - a map missing a required field goes whole, with its key or list item.
//!
//! Bad YAML (an unclosed quote, a tab for indentation) still ends the
//! file: there is no safe way to read on.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::PolicyError;

/// Shape errors reported in one file at most, before giving up on it.
const MOST_REPAIRS: usize = 100;

/// Parses `text`: the file (if what remains after its shape errors parses)
/// and every shape error found on the way, in file order.
/// Policy files and policy test files are read alike.
pub fn parse<File: DeserializeOwned + Default>(
    path: &Path,
    text: &str,
) -> (Option<File>, Vec<PolicyError>) {
    if text.trim().is_empty() {
        return (Some(File::default()), Vec::new());
    }
    let mut text = text.to_owned();
    let mut errors = Vec::new();
    // Keys blanked out for a value of the wrong shape or a missing field:
    // their own "missing field" is the same mistake, already reported.
    let mut blanked_keys = BTreeSet::new();
    // Rows a repair blanked: a list left empty by them is not a mistake.
    let mut blanked_rows = BTreeSet::new();
    for _ in 0..MOST_REPAIRS {
        let error = match serde_saphyr::from_str::<File>(&text) {
            Ok(file) => return (Some(file), in_file_order(errors)),
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
        let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
        let at = Position::new(line, column);
        let mut reported_at = (line, column);
        // Where to repair, and what to say (nothing for what follows from
        // an earlier repair).
        let (repair_at, said) = match Mistake::of(&message) {
            Mistake::UnknownKey => (at, Some(message)),
            Mistake::DuplicateKey(key) => (
                at,
                Some(format!(
                    "`{key}` is written twice in one map (the second is set aside)"
                )),
            ),
            Mistake::WrongShape(expected) => {
                let owner = at.and_then(|at| node_owner(&lines, at));
                let name = owner.and_then(|owner| key_name(&lines, owner));
                let ours = owner.is_some_and(|owner| emptied(&lines, owner, &blanked_rows));
                let said = match &name {
                    _ if ours => None,
                    Some(name) => Some(format!("`{name}` must be {expected}")),
                    None => Some(format!("expected {expected} here")),
                };
                blanked_keys.extend(name);
                (owner, said)
            }
            Mistake::MissingField(field) => {
                let owner = at.and_then(|at| map_owner(&lines, at));
                let followed = blanked_keys.contains(&field);
                blanked_keys.extend(owner.and_then(|owner| key_name(&lines, owner)));
                // Said where the map begins, not at its last key.
                if let Some(owner) = owner {
                    reported_at = (owner.row as u32 + 1, owner.index as u32 + 1);
                }
                (owner, (!followed).then_some(message))
            }
            Mistake::Other => (None, Some(message)),
        };
        if let Some(message) = said {
            errors.push(PolicyError::Syntax {
                file: path.to_owned(),
                line: reported_at.0,
                column: reported_at.1,
                message,
            });
        }
        match repair_at.and_then(|owner| without_key_at(&text, owner)) {
            Some(repaired) if repaired != text => {
                blanked_rows.extend(
                    text.split('\n')
                        .zip(repaired.split('\n'))
                        .enumerate()
                        .filter(|(_, (before, after))| before != after)
                        .map(|(row, _)| row),
                );
                text = repaired;
            }
            _ => {
                if errors.is_empty() {
                    // Only a consequence of a repair was left: say it as is.
                    errors.push(PolicyError::Syntax {
                        file: path.to_owned(),
                        line,
                        column,
                        message: error.without_snippet().to_string(),
                    });
                }
                break;
            }
        }
    }
    (None, in_file_order(errors))
}

/// Shape errors sorted by their place in the file.
fn in_file_order(mut errors: Vec<PolicyError>) -> Vec<PolicyError> {
    errors.sort_by_key(|e| match e {
        PolicyError::Syntax { line, column, .. } => (*line, *column),
        _ => (u32::MAX, u32::MAX),
    });
    errors
}

/// What kind of shape error the parser reported.
enum Mistake {
    UnknownKey,
    /// A key written twice in one map.
    DuplicateKey(String),
    /// A value of another shape than the format's: what was expected.
    WrongShape(&'static str),
    /// A map without this required field.
    MissingField(String),
    Other,
}

impl Mistake {
    fn of(message: &str) -> Mistake {
        if message.starts_with("unknown field") {
            return Mistake::UnknownKey;
        }
        if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
            let key = rest.split(',').next().unwrap_or_default().trim();
            return Mistake::DuplicateKey(key.to_owned());
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            return Mistake::MissingField(rest.split('`').next().unwrap_or_default().to_owned());
        }
        if message.starts_with("expected sequence start") {
            return Mistake::WrongShape("a list");
        }
        if message.starts_with("expected mapping start") {
            return Mistake::WrongShape("a map of `key: value` entries");
        }
        if message.starts_with("invalid type") || message.starts_with("invalid value") {
            return Mistake::WrongShape("something else");
        }
        Mistake::Other
    }
}

/// A place in the text: 0-based row, and 0-based index in its characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    row: usize,
    index: usize,
}

impl Position {
    /// From the parser's 1-based line and column.
    fn new(line: u32, column: u32) -> Option<Position> {
        Some(Position {
            row: usize::try_from(line).ok()?.checked_sub(1)?,
            index: usize::try_from(column).ok()?.checked_sub(1)?,
        })
    }
}

/// Where the key (or list item's `-`) that holds the value at `at` starts.
fn node_owner(lines: &[Vec<char>], at: Position) -> Option<Position> {
    let chars = lines.get(at.row)?;
    // An empty value: the parser points at its key's colon.
    if chars.get(at.index) == Some(&':') {
        return key_start(chars, at.index).map(|index| Position { row: at.row, index });
    }
    let before = &chars[..at.index.min(chars.len())];
    match before.iter().rposition(|c| !c.is_whitespace()) {
        // A value after its key on the same line.
        Some(colon) if before[colon] == ':' => {
            key_start(before, colon).map(|index| Position { row: at.row, index })
        }
        // A list item.
        Some(dash) if before[dash] == '-' => Some(Position {
            row: at.row,
            index: dash,
        }),
        // An element of a flow list: it goes by itself.
        Some(open) if matches!(before[open], '[' | ',') => Some(at),
        Some(_) => None,
        // A block map or list starting on its own line: what holds it.
        None => map_owner(lines, at),
    }
}

/// Where the key (or list item's `-`) that holds the map whose key is at
/// `at` starts.
fn map_owner(lines: &[Vec<char>], at: Position) -> Option<Position> {
    let chars = lines.get(at.row)?;
    let before = &chars[..at.index.min(chars.len())];
    match before.iter().rposition(|c| !c.is_whitespace()) {
        // A flow map: what holds its opening brace.
        Some(last) if matches!(before[last], '{' | ',') => {
            let brace = opening_brace(before)?;
            node_owner(
                lines,
                Position {
                    row: at.row,
                    index: brace,
                },
            )
        }
        // `- key: …`: the map is the list item.
        Some(dash) if before[dash] == '-' => Some(Position {
            row: at.row,
            index: dash,
        }),
        Some(_) => None,
        // A block map indented to `at.index`: the first line above that is
        // indented less holds it.
        None => {
            let (row, above) = lines[..at.row].iter().enumerate().rev().find(|(_, line)| {
                let indent = line.iter().take_while(|c| **c == ' ').count();
                indent < line.len() && indent < at.index
            })?;
            let indent = above.iter().take_while(|c| **c == ' ').count();
            if above[indent] == '-' {
                let first_key = above[indent + 1..]
                    .iter()
                    .position(|c| !c.is_whitespace())
                    .map(|k| indent + 1 + k);
                if first_key == Some(at.index) {
                    return Some(Position { row, index: indent });
                }
            }
            let colon = above.iter().rposition(|c| !c.is_whitespace())?;
            (above[colon] == ':')
                .then(|| key_start(above, colon))
                .flatten()
                .map(|index| Position { row, index })
        }
    }
}

/// Where the key ending at the `:` at `colon` starts.
fn key_start(chars: &[char], colon: usize) -> Option<usize> {
    let start = chars[..colon]
        .iter()
        .rposition(|c| c.is_whitespace() || matches!(c, '{' | ',' | '-'))
        .map_or(0, |at| at + 1);
    (start < colon).then_some(start)
}

/// Whether the key (or list item) at `owner` is left without a value
/// because repairs blanked what it held: nothing after it on its line,
/// and blanked rows where its value was.
fn emptied(lines: &[Vec<char>], owner: Position, blanked_rows: &BTreeSet<usize>) -> bool {
    let Some(chars) = lines.get(owner.row) else {
        return false;
    };
    let after_key = chars[owner.index.min(chars.len())..]
        .iter()
        .position(|c| *c == ':' || *c == '-')
        .map_or(chars.len(), |at| owner.index + at + 1);
    let nothing_after = chars[after_key.min(chars.len())..]
        .iter()
        .all(|c| c.is_whitespace());
    nothing_after
        && (owner.row + 1..lines.len())
            .take_while(|row| lines[*row].iter().all(|c| c.is_whitespace()))
            .any(|row| blanked_rows.contains(&row))
}

/// The key's name at `at`, if a key starts there (not a list item).
fn key_name(lines: &[Vec<char>], at: Position) -> Option<String> {
    let chars = lines.get(at.row)?.get(at.index..)?;
    let end = chars.iter().position(|c| *c == ':')?;
    let name: String = chars[..end].iter().collect();
    let name = name.trim().trim_matches(['"', '\'']);
    (!name.is_empty() && !name.starts_with('-')).then(|| name.to_owned())
}

/// The index of the `{` still open at the end of `chars`, outside quotes.
fn opening_brace(chars: &[char]) -> Option<usize> {
    let mut open = Vec::new();
    let mut quote = None;
    for (at, c) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '{' | '[') => open.push((at, *c)),
            (None, '}' | ']') => {
                open.pop();
            }
            _ => {}
        }
    }
    open.into_iter()
        .rev()
        .find(|(_, c)| *c == '{')
        .map(|(at, _)| at)
}

/// `text` with the mapping key (or list item) at `at` and its value
/// replaced by spaces: in a flow mapping (`{ a: 1, colour: red }`) up to
/// the next `,` or `}` at its depth, with one separating comma; in a block
/// mapping, the rest of its line and every following line indented deeper
/// than the key. `None` when nothing there looks like a key.
fn without_key_at(text: &str, at: Position) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let (row, start) = (at.row, at.index);
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
    use crate::policy::file::PolicyFile;

    #[test]
    fn a_block_key_goes_with_its_value_and_positions_stay() {
        let text = "a:\n  colour:\n    - red\n    - blue\n  b: 1\nc: 2\n";
        let blanked = without_key_at(text, Position::new(2, 3).unwrap()).unwrap();
        assert_eq!(
            blanked,
            "a:\n         \n         \n          \n  b: 1\nc: 2\n"
        );
        assert_eq!(blanked.lines().count(), text.lines().count());
    }

    #[test]
    fn a_flow_key_goes_with_its_value_and_one_comma() {
        let text = "x: { a: 1, colour: [red, blue], b: \"}\" }";
        let blanked = without_key_at(text, Position::new(1, 12).unwrap()).unwrap();
        assert_eq!(
            blanked,
            text.replace("colour: [red, blue],", &" ".repeat(20))
        );
        let last = "x: { a: 1, colour: red }";
        assert_eq!(
            without_key_at(last, Position::new(1, 12).unwrap()).unwrap(),
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
        let (file, errors) = parse::<PolicyFile>(Path::new("p.yml"), text);
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

    /// Each error's (line, column, message).
    fn reported(errors: &[PolicyError]) -> Vec<(u32, u32, String)> {
        errors
            .iter()
            .map(|e| match e {
                PolicyError::Syntax {
                    line,
                    column,
                    message,
                    ..
                } => (*line, *column, message.clone()),
                other => panic!("{other}"),
            })
            .collect()
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_reported_once_by_its_key_and_the_rest_is_read() {
        let text = concat!(
            "policies:\n",
            "  - name: a\n",
            "    match: { labels_any: p1 }\n",
            "    clock: { target: 24h }\n",
            "    escalation: hello\n",
            "  - name: b\n",
            "    match: { labels_any: [\"p2\"] }\n",
            "    clock: { target: 24h }\n",
            "    escalation:\n",
            "      on: start\n",
            "    colour: red\n",
        );
        let (file, errors) = parse::<PolicyFile>(Path::new("p.yml"), text);
        assert_eq!(
            reported(&errors),
            [
                (3, 26, "`labels_any` must be a list".to_owned()),
                (5, 17, "`escalation` must be a list".to_owned()),
                (10, 7, "`escalation` must be a list".to_owned()),
                (11, 5, "unknown field `colour`, expected one of name, description, match, clock, escalation, from_slack, from_gitlab, adopt, adopt_grace, report".to_owned()),
            ]
        );
        let file = file.expect("the rest is read");
        let names: Vec<&str> = file
            .policies
            .iter()
            .map(|p| p.value.name.value.as_str())
            .collect();
        assert_eq!(names, ["a", "b"], "both policies are still there to check");
    }

    #[test]
    fn a_map_missing_a_field_is_reported_where_it_begins_and_dropped() {
        let text = concat!(
            "policies:\n",
            "  - name: a\n",
            "    match: { labels_any: [\"p1\"] }\n",
            "    escalation: []\n",
            "  - name: b\n",
            "    match: { labels_any: [\"p2\"] }\n",
            "    clock: { starts: matched }\n",
            "    escalation:\n",
            "      - slack: { channel: alerts }\n",
            "      - on: breach\n",
        );
        let (file, errors) = parse::<PolicyFile>(Path::new("p.yml"), text);
        assert_eq!(
            reported(&errors),
            [
                (2, 3, "missing field `clock`".to_owned()),
                (7, 5, "missing field `target`".to_owned()),
                (9, 7, "missing field `on`".to_owned()),
            ]
        );
        let file = file.expect("the rest is read");
        assert!(file.policies.is_empty(), "both policies were incomplete");
    }

    #[test]
    fn a_key_written_twice_is_reported_and_the_second_set_aside() {
        let text = concat!(
            "policies:\n",
            "  - name: a\n",
            "    match: { labels_any: [\"p1\"] }\n",
            "    clock: { target: 24h }\n",
            "    clock: { target: 12h }\n",
            "    escalation: []\n",
        );
        let (file, errors) = parse::<PolicyFile>(Path::new("p.yml"), text);
        assert_eq!(
            reported(&errors),
            [(
                5,
                5,
                "`clock` is written twice in one map (the second is set aside)".to_owned()
            )]
        );
        assert_eq!(file.expect("the rest is read").policies.len(), 1);
    }

    #[test]
    fn bad_yaml_still_ends_the_file() {
        let (file, errors) = parse::<PolicyFile>(Path::new("p.yml"), "policies:\n  - name: \"a\n");
        assert!(file.is_none());
        assert_eq!(errors.len(), 1);
    }
}
