//! The static description of a session type that peers compare.

/// One field of a session type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The field's name in the struct.
    pub name: &'static str,
    /// Its stable id: declaration order unless pinned with
    /// `#[session(id = N)]`.
    pub id: u16,
    /// Whether it may change after the session is created.
    pub mutable: bool,
    /// Its type as written in the struct.
    pub type_name: &'static str,
}

impl FieldInfo {
    /// Describes a field (called by the derive).
    pub const fn new(name: &'static str, id: u16, mutable: bool, type_name: &'static str) -> Self {
        Self {
            name,
            id,
            mutable,
            type_name,
        }
    }
}

/// The fields of a session type and a fingerprint of its shape.
///
/// Two programs may exchange deltas for a type only when their fingerprints
/// match. The fingerprint covers each field's name, id, mutability and type
/// as written, and recursively the schemas of nested session types, so
/// adding a field to a nested struct changes the fingerprint of every struct
/// that contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    name: &'static str,
    fields: Vec<FieldInfo>,
    mutable_ids: Vec<u16>,
    fingerprint: u64,
}

impl Schema {
    /// Builds a schema from fields sorted by id and the shape fingerprint
    /// of each field (same order), as the derive does.
    pub fn new(name: &'static str, mut fields: Vec<FieldInfo>, shapes: &[u64]) -> Self {
        let mut fp = Fingerprint::new();
        for (f, shape) in fields
            .iter()
            .zip(shapes.iter().copied().chain(std::iter::repeat(0)))
        {
            fp.write(f.name.as_bytes());
            fp.write(&f.id.to_le_bytes());
            fp.write(&[u8::from(f.mutable)]);
            fp.write(f.type_name.as_bytes());
            fp.write(&shape.to_le_bytes());
        }
        fields.sort_by_key(|f| f.id);
        let mutable_ids = fields.iter().filter(|f| f.mutable).map(|f| f.id).collect();
        Self {
            name,
            fields,
            mutable_ids,
            fingerprint: fp.finish(),
        }
    }

    /// The struct's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every field, in increasing id order.
    pub fn fields(&self) -> &[FieldInfo] {
        &self.fields
    }

    /// The field with this id.
    pub fn field(&self, id: u16) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// Ids of the mutable fields, increasing: the fields a delta may patch.
    pub fn mutable_ids(&self) -> &[u16] {
        &self.mutable_ids
    }

    /// A 64-bit hash of the shape of the type (FNV-1a, stable across
    /// builds and platforms).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// FNV-1a, 64 bits: small, fixed, and the same on every platform and build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    pub(crate) const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate consecutive writes, so ("ab", "c") and ("a", "bc") differ.
        self.0 = self.0.rotate_left(5) ^ 0xff;
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Combines a shape tag with the shapes it contains.
pub(crate) fn shape(tag: &str, inner: &[u64]) -> u64 {
    let mut fp = Fingerprint::new();
    fp.write(tag.as_bytes());
    for i in inner {
        fp.write(&i.to_le_bytes());
    }
    fp.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_every_part_of_a_field() {
        let base = || {
            vec![
                FieldInfo::new("a", 0, true, "u32"),
                FieldInfo::new("b", 1, false, "String"),
            ]
        };
        let fp =
            |fields: Vec<FieldInfo>, shapes: &[u64]| Schema::new("S", fields, shapes).fingerprint();
        let reference = fp(base(), &[1, 2]);
        assert_eq!(reference, fp(base(), &[1, 2]));
        let mut renamed = base();
        renamed[0].name = "c";
        let mut moved = base();
        moved[1].id = 5;
        let mut frozen = base();
        frozen[0].mutable = false;
        let mut retyped = base();
        retyped[0].type_name = "u64";
        for other in [
            fp(renamed, &[1, 2]),
            fp(moved, &[1, 2]),
            fp(frozen, &[1, 2]),
            fp(retyped, &[1, 2]),
            fp(base(), &[1, 3]),
        ] {
            assert_ne!(reference, other);
        }
    }

    #[test]
    fn fields_are_sorted_by_id() {
        let s = Schema::new(
            "S",
            vec![
                FieldInfo::new("late", 9, true, "u8"),
                FieldInfo::new("early", 1, false, "u8"),
            ],
            &[0, 0],
        );
        assert_eq!(s.fields()[0].name, "early");
        assert_eq!(s.mutable_ids(), &[9]);
        assert_eq!(s.field(9).map(|f| f.name), Some("late"));
    }
}
