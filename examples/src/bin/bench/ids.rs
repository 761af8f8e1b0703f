//! Id shapes: the reference workload with its item and artwork ids spelled another way,
//! everything else (pages, Zipf popularity, visible times) unchanged.

use std::collections::HashMap;

use sightline_sim::rng::Rng;
use sightline_sim::workload::Workload;

use super::uuid_v4;

/// Seed of the replacement ids, fixed so every run records the same bytes.
const ID_SEED: u64 = 0x5EED_0003;
/// Lowercase hex: the alphabet of hashes and UUIDs.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// How item and artwork ids are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdShape {
    /// As the workload generates them: `title:12345678`, `art:123456789`.
    Title,
    /// Random version 4 UUIDs, 36 characters.
    Uuid,
    /// Random lowercase hex of this many characters.
    Hex(usize),
}

impl IdShape {
    /// Short label for tables.
    pub fn label(self) -> String {
        match self {
            IdShape::Title => "title: ids (13-14 B)".into(),
            IdShape::Uuid => "UUID ids (36 B)".into(),
            IdShape::Hex(n) => format!("{n} B hex ids"),
        }
    }
}

/// `workload` with every distinct item and artwork id replaced by one of `shape`, the same
/// replacement wherever the id appears.
pub fn reshape(workload: &Workload, shape: IdShape) -> Workload {
    let mut out = workload.clone();
    let mut rng = Rng::new(ID_SEED);
    let mut next_id: Box<dyn FnMut() -> String> = match shape {
        IdShape::Title => return out,
        IdShape::Uuid => Box::new(move || uuid_v4(&mut rng)),
        IdShape::Hex(n) => Box::new(move || hex(&mut rng, n)),
    };
    let mut spelled: HashMap<String, String> = HashMap::new();
    let mut respell = |id: &mut String| {
        let new = spelled
            .entry(std::mem::take(id))
            .or_insert_with(&mut next_id);
        id.clone_from(new);
    };
    for item in out
        .pages
        .iter_mut()
        .flat_map(|p| p.rows.iter_mut().flatten())
    {
        respell(&mut item.id);
        respell(&mut item.artwork_id);
    }
    out
}

/// `len` random lowercase hex characters.
fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(HEX[rng.below(HEX.len() as u64) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use sightline_sim::workload::{WorkloadSpec, generate};

    use super::*;

    #[test]
    fn reshaped_ids_have_the_shape_and_follow_the_originals() {
        let workload = generate(&WorkloadSpec {
            page_views: 20,
            ..WorkloadSpec::reference()
        });
        let items = |w: &Workload| -> Vec<(String, String)> {
            w.pages
                .iter()
                .flat_map(|p| p.rows.iter().flatten())
                .map(|it| (it.id.clone(), it.artwork_id.clone()))
                .collect()
        };
        let original = items(&workload);
        for (shape, len) in [
            (IdShape::Hex(8), 8),
            (IdShape::Uuid, 36),
            (IdShape::Hex(64), 64),
        ] {
            let reshaped = items(&reshape(&workload, shape));
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for ((old, old_art), (new, new_art)) in original.iter().zip(&reshaped) {
                assert_eq!((new.len(), new_art.len()), (len, len));
                for (old, new) in [(old, new), (old_art, new_art)] {
                    assert_eq!(*seen.entry(old).or_insert(new), new.as_str());
                }
            }
        }
        assert_eq!(items(&reshape(&workload, IdShape::Title)), original);
    }
}
