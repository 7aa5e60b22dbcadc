//! How the layers of a profile lie over each other: a key set in the upper
//! layer wins, an unset one falls through to the layer below, and a file's
//! `default` table masks the shipped per-type entries (so that a file's
//! default is not beaten by a shipped type's own value). Every table of
//! optional keys gets both operations from [`layered!`], named field by
//! field once.

use std::collections::BTreeMap;

/// A table whose every key is optional.
pub(super) trait Layered: Sized {
    /// Each key from `self` where it is set, else from `below`.
    fn over(self, below: Self) -> Self;
    /// `self` without the keys `mask` sets.
    fn without(self, mask: &Self) -> Self;
}

/// Implements [`Layered`] for a struct of `Option` fields, listed once.
macro_rules! layered {
    ($name:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::simulator::profile::layers::Layered for $name {
            fn over(self, below: Self) -> Self {
                Self { $($field: self.$field.or(below.$field)),+ }
            }
            fn without(self, mask: &Self) -> Self {
                Self { $($field: if mask.$field.is_some() { None } else { self.$field }),+ }
            }
        }
    };
}
pub(super) use layered;

/// Per-type tables of a file laid over those `below`: the shipped entries
/// lose the keys the file's `default` sets, then each of the file's own
/// entries lies over the entry of the same type.
pub(super) fn types_over<E: Layered>(above: BTreeMap<String, E>, below: BTreeMap<String, E>, default: &E) -> BTreeMap<String, E> {
    let mut types: BTreeMap<String, E> = below.into_iter().map(|(name, entry)| (name, entry.without(default))).collect();
    for (name, entry) in above {
        let merged = match types.remove(&name) {
            Some(below) => entry.over(below),
            None => entry,
        };
        types.insert(name, merged);
    }
    types
}
