//! A policy's `match:` section as written: labels, type, project,
//! confidentiality, and the conditions beyond them (who is assigned, the
//! author, a milestone, a weight, the state, an age). Keywords and shapes
//! are read by hand, so that a mistake gets a message naming the allowed
//! forms and its line.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Located, ScalarText};

/// Which issues the policy applies to. All given conditions must hold.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchEntry {
    /// At least one of these labels (wildcards such as `priority::*` allowed).
    #[serde(default)]
    pub labels_any: Vec<Located<String>>,
    /// Every one of these labels.
    #[serde(default)]
    pub labels_all: Vec<Located<String>>,
    /// None of these labels.
    #[serde(default)]
    pub labels_none: Vec<Located<String>>,
    /// Two or more labels match the same one of these patterns: with
    /// `team::*`, an issue with more than one team.
    #[serde(default)]
    pub labels_several: Vec<Located<String>>,
    /// `any` (default), `only` confidential issues, or `never`.
    #[serde(default)]
    pub confidential: Option<Located<String>>,
    /// Work item types, as GitLab names them: `issue`, `incident`, `task`, ...
    #[serde(default)]
    pub issue_types: Vec<Located<String>>,
    /// Project paths (`group/project`, wildcards allowed). Empty: every project.
    #[serde(default)]
    pub projects: Vec<Located<String>>,
    /// `any` (someone is assigned), `none` (nobody is), or GitLab
    /// usernames (one of them is assigned).
    #[serde(default)]
    pub assignees: Option<Located<PresenceEntry>>,
    /// GitLab usernames (wildcards allowed): the issue's author is one of them.
    #[serde(default)]
    pub authors: Vec<Located<String>>,
    /// `any`, `none`, or milestone titles (wildcards allowed: `17.*`).
    #[serde(default)]
    pub milestone: Option<Located<PresenceEntry>>,
    /// `any` (a weight is set), `none`, or `{ at_least: 3, at_most: 8 }`.
    #[serde(default)]
    pub weight: Option<Located<WeightEntry>>,
    /// `opened` or `closed`: only while the issue is. Not for a clock
    /// that closing stops (closing is what resolves it).
    #[serde(default)]
    pub state: Option<Located<String>>,
    /// Age since creation: `{ older_than: 2d }`, `{ newer_than: 30d }`.
    #[serde(default)]
    pub created: Option<Located<AgeEntry>>,
    /// Time since the issue was last updated: `{ older_than: 14d }`.
    #[serde(default)]
    pub updated: Option<Located<AgeEntry>>,
}

/// `any` (at least one), `none`, or a list of names (at least one of them).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum PresenceEntry {
    Keyword(PresenceKeyword),
    /// Names, wildcards allowed (`17.*`).
    Names(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKeyword {
    Any,
    None,
}

const PRESENCE_FORMS: &str = "`any`, `none` or a list of names";

impl<'de> Deserialize<'de> for PresenceEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PresenceVisitor;

        impl<'de> Visitor<'de> for PresenceVisitor {
            type Value = PresenceEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(PRESENCE_FORMS)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PresenceEntry, E> {
                match v {
                    "any" => Ok(PresenceEntry::Keyword(PresenceKeyword::Any)),
                    "none" => Ok(PresenceEntry::Keyword(PresenceKeyword::None)),
                    other => Err(E::custom(format!(
                        "`{other}` is not {PRESENCE_FORMS} (write one name as `[{other}]`)"
                    ))),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PresenceEntry, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<ScalarText>()? {
                    names.push(name.0);
                }
                Ok(PresenceEntry::Names(names))
            }
        }

        deserializer.deserialize_any(PresenceVisitor)
    }
}

/// `any` (a weight is set), `none`, or bounds `{ at_least: 3, at_most: 8 }`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum WeightEntry {
    Keyword(PresenceKeyword),
    Range {
        /// The lowest weight that matches.
        #[schemars(default)]
        at_least: Option<u32>,
        /// The highest weight that matches.
        #[schemars(default)]
        at_most: Option<u32>,
    },
}

const WEIGHT_FORMS: &str = "`any`, `none` or `{ at_least: 3, at_most: 8 }`";

impl<'de> Deserialize<'de> for WeightEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WeightVisitor;

        impl<'de> Visitor<'de> for WeightVisitor {
            type Value = WeightEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(WEIGHT_FORMS)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<WeightEntry, E> {
                match v {
                    "any" => Ok(WeightEntry::Keyword(PresenceKeyword::Any)),
                    "none" => Ok(WeightEntry::Keyword(PresenceKeyword::None)),
                    other => Err(E::custom(format!("`{other}` is not {WEIGHT_FORMS}"))),
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WeightEntry, E> {
                Err(E::custom(format!(
                    "a weight of exactly {v} is `{{ at_least: {v}, at_most: {v} }}`"
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WeightEntry, A::Error> {
                let mut at_least = None;
                let mut at_most = None;
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "at_least" => &mut at_least,
                        "at_most" => &mut at_most,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in `weight`, expected {WEIGHT_FORMS}"
                            )));
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format!(
                            "`{key}` is given twice in `weight`"
                        )));
                    }
                    *slot = Some(map.next_value::<u32>()?);
                }
                if at_least.is_none() && at_most.is_none() {
                    return Err(de::Error::custom(format!(
                        "`weight` needs `at_least` or `at_most`: {WEIGHT_FORMS}"
                    )));
                }
                Ok(WeightEntry::Range { at_least, at_most })
            }
        }

        deserializer.deserialize_any(WeightVisitor)
    }
}

/// How old the issue (or its last update) must be.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgeEntry {
    /// At least this long ago (`2d`): the issue matches from then on.
    #[serde(default)]
    pub older_than: Option<Located<ScalarText>>,
    /// Less than this long ago (`30d`): the issue stops matching then.
    #[serde(default)]
    pub newer_than: Option<Located<ScalarText>>,
}
