//! objectGUID values: 16 bytes in Microsoft's mixed-endian layout.
//!
//! The first three fields are little-endian, the last eight bytes are kept in
//! order, so `00112233-4455-6677-8899-AABBCCDDEEFF` is stored as
//! `33 22 11 00 55 44 77 66 88 99 AA BB CC DD EE FF`.

use std::fmt;

/// A directory object's GUID, which survives renames and moves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an objectGUID is 16 bytes, got {0}")]
pub struct GuidLengthError(pub usize);

impl Guid {
    pub fn from_bytes(bytes: &[u8]) -> Result<Guid, GuidLengthError> {
        let array: [u8; 16] = bytes.try_into().map_err(|_| GuidLengthError(bytes.len()))?;
        Ok(Guid(array))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        for byte in &b[10..] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_three_fields_are_little_endian() {
        let bytes = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            Guid::from_bytes(&bytes).unwrap().to_string(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(Guid::from_bytes(&[0; 15]), Err(GuidLengthError(15)));
        assert_eq!(Guid::from_bytes(&[0; 17]), Err(GuidLengthError(17)));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            match Guid::from_bytes(&bytes) {
                Ok(guid) => {
                    prop_assert_eq!(&guid.as_bytes()[..], &bytes[..]);
                    prop_assert_eq!(guid.to_string().len(), 36);
                }
                Err(GuidLengthError(len)) => prop_assert_ne!(len, 16),
            }
        }
    }
}
